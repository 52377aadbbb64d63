extension Resource {
    /// One line saying what the resource does, e.g.
    /// `TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%`.
    public var summary: String {
        "\(kind.rawValue) \(metadata.namespace)/\(metadata.name): \(specSummary)"
    }

    private var specSummary: String {
        switch spec {
        case .trafficSplit(let split):
            let total = split.backends.reduce(0) { $0 + $1.weight }
            let shares = split.backends.map { "\($0.service) \(percent($0.weight, of: total))" }
            return "\(split.service)\(matchesSummary(split.matches)) → \(shares.joined(separator: ", "))"
        case .httpRouteGroup(let group):
            let count = group.matches.count == 1 ? "1 match" : "\(group.matches.count) matches"
            return "\(count) (\(group.matches.map(\.name).joined(separator: ", ")))"
        case .tcpRoute(let route):
            return route.ports.isEmpty ? "all ports" : "ports \(route.ports.map(String.init).joined(separator: ", "))"
        case .trafficTarget(let target):
            let sources = target.sources.map { "\($0.namespace)/\($0.name)" }.joined(separator: ", ")
            let destination = "\(target.destination.namespace)/\(target.destination.name)"
                + (target.destination.port.map { ":\($0)" } ?? "")
            let rules = target.rules.map { rule in
                "\(rule.kind.rawValue) \(rule.name)" + (rule.matches.isEmpty ? "" : " [\(rule.matches.joined(separator: ", "))]")
            }
            return "\(sources) → \(destination) via \(rules.joined(separator: ", "))"
        case .trafficMirror(let mirror):
            let copies = mirror.mirrors.map { "\($0.service) \(Self.format($0.percent))%" }
            let compare = mirror.compare.map { " (compared, bodies up to \($0.maxBodyBytes) bytes)" } ?? ""
            return "\(mirror.service)\(matchesSummary(mirror.matches)) ⇉ \(copies.joined(separator: ", "))\(compare)"
        }
    }

    private func matchesSummary(_ matches: [RouteReference]) -> String {
        matches.isEmpty ? "" : " [\(matches.map { "\($0.kind.rawValue) \($0.name)" }.joined(separator: ", "))]"
    }

    private func percent(_ weight: UInt64, of total: UInt64) -> String {
        total == 0 ? "0%" : "\(Self.format(Double(weight) * 100 / Double(total)))%"
    }

    /// At most two decimals, no trailing zeros: 90, 33.33, 12.5.
    static func format(_ value: Double) -> String {
        let hundredths = (value * 100).rounded()
        let whole = Int(hundredths / 100)
        let fraction = Int(hundredths) % 100
        if fraction == 0 { return "\(whole)" }
        return fraction % 10 == 0 ? "\(whole).\(fraction / 10)" : "\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
