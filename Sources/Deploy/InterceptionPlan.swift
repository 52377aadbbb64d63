import Foundation

/// The iptables rules `eino init` writes, as a pure function of its options: no process is
/// run here, so the plan is unit-tested and `--dry-run` prints exactly what would run.
///
/// Everything lives in Eino's own chains in the `nat` table; the built-in chains get one
/// jump each, added only when absent. Re-running flushes and refills the own chains, so a
/// second run leaves one set of rules (and picks up changed options).
public struct InterceptionOptions: Sendable, Equatable {
    public var proxyUID: Int = 7102
    public var outboundPort: Int = 7140
    public var inboundPort: Int = 7143
    public var adminPort: Int = 7191
    /// Destination ports the app reaches directly (`N` or `N:M` ranges).
    public var skipOutboundPorts: [String] = []
    /// Local ports whose inbound connections go straight to the app.
    public var skipInboundPorts: [String] = []
    /// Destinations (CIDR or address) the app reaches directly; each applies to its family.
    public var skipCIDRs: [String] = []

    public init() {}
}

/// IPv4 (`iptables`) or IPv6 (`ip6tables`).
public enum IPFamily: String, Sendable, CaseIterable {
    case v4, v6

    /// Loopback destinations: never intercepted (the proxy's own listeners live there).
    var loopback: String { self == .v4 ? "127.0.0.0/8" : "::1/128" }
}

/// Which iptables implementation writes the rules.
public enum IPTablesBackend: String, Sendable, CaseIterable {
    case nft, legacy

    public func command(for family: IPFamily) -> String {
        let base = family == .v4 ? "iptables" : "ip6tables"
        return "\(base)-\(rawValue)"
    }
}

/// One step of a plan. `check` guards it: with `.unless` the command runs only when the
/// check fails (add a rule only if absent), with `.onlyIf` only when it succeeds (remove only
/// what is there); `fallback` runs when the command fails (create a chain, else flush it).
public struct IPTablesStep: Sendable, Equatable {
    public enum Guard: Sendable, Equatable {
        case none
        case unless([String])
        case onlyIf([String])
    }

    public var family: IPFamily
    public var arguments: [String]
    public var guarding: Guard = .none
    public var fallback: [String]? = nil

    /// The step as one `sh` line for `backend`: `--dry-run` prints these.
    public func shellLine(_ backend: IPTablesBackend) -> String {
        let tool = backend.command(for: family)
        func render(_ args: [String]) -> String { ([tool] + args).map(shellQuote).joined(separator: " ") }
        var line = render(arguments)
        if let fallback { line += " || " + render(fallback) }
        switch guarding {
        case .none: return line
        case .unless(let check): return render(check) + " || " + line
        case .onlyIf(let check): return render(check) + " && " + line
        }
    }
}

/// Quotes an argument for `sh` only when it needs it.
func shellQuote(_ text: String) -> String {
    let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "-_./:,=@%+".contains($0) }
    if plain && !text.isEmpty { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Eino's chains and what each holds.
public enum EinoChain: String, Sendable, CaseIterable {
    /// Jumped to from `nat OUTPUT` for TCP: the app's outgoing connections, with exemptions.
    case output = "EINO_OUTPUT"
    /// REDIRECT to the outbound listener.
    case redirect = "EINO_REDIRECT"
    /// Jumped to from `nat PREROUTING` for TCP: connections arriving at the pod, with exemptions.
    case inbound = "EINO_INBOUND"
    /// REDIRECT to the inbound listener.
    case inboundRedirect = "EINO_IN_REDIRECT"
}

public enum InterceptionPlan {
    /// The jump rules in the built-in chains, `(chain, rule)`.
    static let jumps: [(String, [String])] = [
        ("PREROUTING", ["-p", "tcp", "-j", EinoChain.inbound.rawValue]),
        ("OUTPUT", ["-p", "tcp", "-j", EinoChain.output.rawValue]),
    ]

    /// The steps that install the rules for `families`, in order: create-or-flush every own
    /// chain, fill them, then add the jumps that are missing (so interception starts only once
    /// the chains are complete).
    public static func install(_ options: InterceptionOptions, families: [IPFamily]) -> [IPTablesStep] {
        families.flatMap { install(options, family: $0) }
    }

    public static func install(_ options: InterceptionOptions, family: IPFamily) -> [IPTablesStep] {
        var steps: [IPTablesStep] = []
        let nat = ["-t", "nat"]
        for chain in EinoChain.allCases {
            steps.append(IPTablesStep(family: family, arguments: nat + ["-N", chain.rawValue], fallback: nat + ["-F", chain.rawValue]))
        }
        func append(_ chain: EinoChain, _ rule: [String]) {
            steps.append(IPTablesStep(family: family, arguments: nat + ["-A", chain.rawValue] + rule))
        }
        // Outbound: the proxy's own connections, loopback, skipped destinations and ports leave as they are.
        append(.output, ["-m", "owner", "--uid-owner", String(options.proxyUID), "-j", "RETURN"])
        append(.output, ["-d", family.loopback, "-j", "RETURN"])
        for cidr in options.skipCIDRs where Self.family(of: cidr) == family {
            append(.output, ["-d", cidr, "-j", "RETURN"])
        }
        for port in options.skipOutboundPorts {
            append(.output, ["-p", "tcp", "--dport", port, "-j", "RETURN"])
        }
        append(.output, ["-j", EinoChain.redirect.rawValue])
        append(.redirect, ["-p", "tcp", "-j", "REDIRECT", "--to-ports", String(options.outboundPort)])
        // Inbound: the admin port (probes, metrics) and skipped ports reach their listener directly.
        append(.inbound, ["-p", "tcp", "--dport", String(options.adminPort), "-j", "RETURN"])
        for port in options.skipInboundPorts {
            append(.inbound, ["-p", "tcp", "--dport", port, "-j", "RETURN"])
        }
        append(.inbound, ["-j", EinoChain.inboundRedirect.rawValue])
        append(.inboundRedirect, ["-p", "tcp", "-j", "REDIRECT", "--to-ports", String(options.inboundPort)])
        for (chain, rule) in jumps {
            steps.append(IPTablesStep(family: family, arguments: nat + ["-A", chain] + rule, guarding: .unless(nat + ["-C", chain] + rule)))
        }
        return steps
    }

    /// The steps that take everything out again; each only acts on what is there.
    public static func remove(families: [IPFamily]) -> [IPTablesStep] {
        families.flatMap { family -> [IPTablesStep] in
            let nat = ["-t", "nat"]
            var steps: [IPTablesStep] = []
            for (chain, rule) in jumps {
                steps.append(IPTablesStep(family: family, arguments: nat + ["-D", chain] + rule, guarding: .onlyIf(nat + ["-C", chain] + rule)))
            }
            // Flush all before deleting any: the chains refer to each other.
            for verb in ["-F", "-X"] {
                for chain in EinoChain.allCases {
                    steps.append(IPTablesStep(family: family, arguments: nat + [verb, chain.rawValue], guarding: .onlyIf(nat + ["-S", chain.rawValue])))
                }
            }
            return steps
        }
    }

    /// The family of an address or CIDR: IPv6 when it has a colon.
    public static func family(of cidr: String) -> IPFamily { cidr.contains(":") ? .v6 : .v4 }

    /// Checks a list of ports (`N` or `N:M`, also written `N-M`) and normalises ranges to `N:M`.
    public static func parsePorts(_ text: String) -> [String]? {
        var ports: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let item = part.trimmingCharacters(in: .whitespaces)
            let bounds = item.split(omittingEmptySubsequences: false, whereSeparator: { $0 == ":" || $0 == "-" })
            guard (1...2).contains(bounds.count) else { return nil }
            let numbers = bounds.compactMap { Int($0) }
            guard numbers.count == bounds.count, numbers.allSatisfy({ (1...65535).contains($0) }) else { return nil }
            if numbers.count == 2 && numbers[0] > numbers[1] { return nil }
            ports.append(numbers.map(String.init).joined(separator: ":"))
        }
        return ports
    }

    /// Checks a list of CIDRs or addresses (`10.0.0.0/8`, `192.168.1.1`, `fd00::/8`).
    public static func parseCIDRs(_ text: String) -> [String]? {
        var result: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let item = part.trimmingCharacters(in: .whitespaces)
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(pieces.count) else { return nil }
            let address = String(pieces[0])
            let v6 = address.contains(":")
            if v6 {
                guard address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), address.filter({ $0 == ":" }).count >= 2 else { return nil }
            } else {
                let octets = address.split(separator: ".", omittingEmptySubsequences: false)
                guard octets.count == 4, octets.allSatisfy({ Int($0).map { (0...255).contains($0) } ?? false }) else { return nil }
            }
            if pieces.count == 2 {
                guard let length = Int(pieces[1]), (0...(v6 ? 128 : 32)).contains(length) else { return nil }
            }
            result.append(item)
        }
        return result
    }
}
