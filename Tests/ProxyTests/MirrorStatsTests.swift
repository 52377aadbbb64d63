import Testing

@testable import Telemetry

/// Mirror counters as reports carry them: deltas, merging, rates.
@Suite struct MirrorStatsTests {
    static func stats(sampled: UInt64, compared: UInt64, mismatched: UInt64, samples: [Double] = []) -> MirrorStats {
        var stats = MirrorStats(namespace: "default", service: "web", mirror: "web-v2")
        stats.sampled = sampled
        stats.sent = sampled
        stats.compared = compared
        stats.mismatched = mismatched
        stats.bodyMismatches = mismatched
        stats.dropped = ["inflight": sampled / 10]
        stats.shadowLatency.record(nanoseconds: 2_000_000)
        stats.samples = samples.map { MirrorSample(method: "GET", path: "/\(Int($0))", primaryStatus: 200, shadowStatus: 200, difference: "d", time: $0) }
        return stats
    }

    @Test func deltasCarryOnlyWhatIsNew() {
        let earlier = Self.stats(sampled: 100, compared: 90, mismatched: 9, samples: [1, 2])
        var later = Self.stats(sampled: 150, compared: 140, mismatched: 12, samples: [1, 2, 3])
        later.shadowLatency.record(nanoseconds: 30_000_000)
        let delta = later.subtracting(earlier)
        #expect(delta.sampled == 50 && delta.compared == 50 && delta.mismatched == 3 && delta.bodyMismatches == 3)
        #expect(delta.dropped == ["inflight": 5])
        #expect(delta.shadowLatency.count == 1)
        #expect(delta.samples.map(\.time) == [3])
        // Summing the earlier totals and the delta gives the later totals back.
        var summed = earlier
        summed.merge(delta)
        #expect(summed.sampled == later.sampled && summed.mismatched == later.mismatched && summed.shadowLatency == later.shadowLatency)
        #expect(summed.samples.map(\.time) == [1, 2, 3])
        #expect(abs(summed.mismatchRate - 12.0 / 140) < 1e-12)
    }

    @Test func snapshotsLeaveOutPairsWithNothingNew() {
        let earlier = MirrorSnapshot(stats: [Self.stats(sampled: 10, compared: 10, mismatched: 1)])
        #expect(earlier.subtracting(earlier).isEmpty)
        var other = MirrorStats(namespace: "default", service: "api", mirror: "api-v2")
        other.sampled = 3
        let later = MirrorSnapshot(stats: [Self.stats(sampled: 10, compared: 10, mismatched: 1), other])
        #expect(later.subtracting(earlier).map(\.service) == ["api"])
    }

    @Test func samplesKeepTheNewestTwenty() {
        var stats = Self.stats(sampled: 1, compared: 1, mismatched: 1, samples: (0..<15).map(Double.init))
        stats.merge(Self.stats(sampled: 1, compared: 1, mismatched: 1, samples: (15..<30).map(Double.init)))
        #expect(stats.samples.map(\.time) == (10..<30).map(Double.init))
    }
}
