import Foundation

/// Peak-EWMA latency with outstanding-request weighting, and the power-of-two-choices
/// pick over it. Pure: time is passed in, chance is passed in.
public struct PeakEWMA: Sendable {
    /// How fast old latency is forgotten.
    public static let decayNanos: Double = 10e9
    /// What an endpoint with no measurement is assumed to take, so a new endpoint is tried
    /// but not flooded.
    public static let initialNanos: Double = 1e6

    public private(set) var estimate: Double = PeakEWMA.initialNanos
    public private(set) var lastUpdate: UInt64 = 0
    public var outstanding: Int = 0

    public init() {}

    /// Adds one round-trip time: a slower sample replaces the estimate at once (the peak);
    /// a faster one pulls it down with an exponential decay over elapsed time.
    public mutating func observe(rttNanos: UInt64, now: UInt64) {
        let rtt = Double(rttNanos)
        if rtt > estimate {
            estimate = rtt
        } else {
            let elapsed = now > lastUpdate ? Double(now - lastUpdate) : 0
            let weight = exp(-elapsed / PeakEWMA.decayNanos)
            estimate = estimate * weight + rtt * (1 - weight)
        }
        lastUpdate = now
    }

    /// Lower is better.
    public var cost: Double { estimate * Double(outstanding + 1) }
}

public enum PowerOfTwoChoices {
    /// Picks an index among `count` candidates with two random draws; `cost(i)` says how
    /// loaded candidate i is.
    @inlinable
    public static func pick(count: Int, random: UInt64, cost: (Int) -> Double) -> Int {
        if count <= 1 { return 0 }
        let first = Int(random % UInt64(count))
        var second = Int((random >> 32) % UInt64(count - 1))
        if second >= first { second += 1 }
        return cost(second) < cost(first) ? second : first
    }
}

/// A small fast generator (xorshift64*) for per-loop choices; never for secrets.
struct FastRandom {
    var state: UInt64

    init(seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
