/// What a proxy sends the control plane every `--report-interval` (POST /v1/report): the
/// counters added since the last report the control plane acknowledged.
///
/// Exactly-once, without losing anything while the control plane is away: a proxy numbers
/// its reports (`sequence`) and says which acknowledged one the deltas start from (`base`).
/// The control plane applies a report only when `base` is the last sequence it applied for
/// that `instance` (or it has never seen the instance: it restarted), and answers with the
/// last sequence it holds. A report that failed is therefore never lost — the next one
/// starts from the same base and carries it — and one that was applied but whose answer was
/// lost is never counted twice: the next is refused, and the proxy rebases on the sequence
/// the control plane names.
public struct TelemetryReport: Codable, Sendable {
    /// Random per proxy process (and renewed if the proxy ever loses track of its deltas).
    public var instance: String
    public var sequence: UInt64
    /// The acknowledged report these deltas start from; 0 = the proxy's start.
    public var base: UInt64
    public var routes: [Route] = []
    public var tcp: [TCP] = []
    public var proxyErrors: [ProxyError] = []
    /// `PolicyDecisions.counts` deltas.
    public var policyDecisions: [UInt64] = []
    /// Mirror counters (`MirrorStats.subtracting`), per root service and mirror.
    public var mirrors: [MirrorStats] = []

    public init(instance: String, sequence: UInt64, base: UInt64) {
        self.instance = instance
        self.sequence = sequence
        self.base = base
    }

    public struct Route: Codable, Sendable, Equatable {
        public var direction: String
        public var service: String
        public var backend: String
        public var tls: Bool
        public var requests: UInt64
        public var responses: [Responses]
        public var latency: Histogram
        public var duration: Histogram
    }

    public struct Responses: Codable, Sendable, Equatable {
        public var statusCode: Int
        public var failure: Bool
        public var count: UInt64
    }

    public struct TCP: Codable, Sendable, Equatable {
        public var direction: String
        public var opened: UInt64
        public var readBytes: UInt64
        public var writeBytes: UInt64
    }

    public struct ProxyError: Codable, Sendable, Equatable {
        public var direction: String
        public var cause: String
        public var count: UInt64
    }

    /// The control plane's answer: the last sequence it holds for the instance, and whether
    /// this report was applied.
    public struct Reply: Codable, Sendable {
        public var acknowledged: UInt64
        public var applied: Bool

        public init(acknowledged: UInt64, applied: Bool) {
            self.acknowledged = acknowledged
            self.applied = applied
        }
    }

    // Fields are decoded when present, so a report from an older or newer proxy (with or
    // without a section) still decodes.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        instance = try container.decode(String.self, forKey: .instance)
        sequence = try container.decode(UInt64.self, forKey: .sequence)
        base = try container.decode(UInt64.self, forKey: .base)
        routes = try container.decodeIfPresent([Route].self, forKey: .routes) ?? []
        tcp = try container.decodeIfPresent([TCP].self, forKey: .tcp) ?? []
        proxyErrors = try container.decodeIfPresent([ProxyError].self, forKey: .proxyErrors) ?? []
        policyDecisions = try container.decodeIfPresent([UInt64].self, forKey: .policyDecisions) ?? []
        mirrors = try container.decodeIfPresent([MirrorStats].self, forKey: .mirrors) ?? []
    }

    /// Adds a delta of the proxy metrics (`MetricsSnapshot.subtracting`).
    public mutating func add(_ delta: MetricsSnapshot) {
        for (key, route) in delta.routes.sorted(by: { $0.key < $1.key }) {
            var responses: [Responses] = []
            for (slot, count) in route.statusCounts.enumerated() where count > 0 {
                for failure in [false, true] {
                    let value = route.responses(status: slot + 100, failure: failure)
                    if value > 0 { responses.append(Responses(statusCode: slot + 100, failure: failure, count: value)) }
                }
            }
            routes.append(Route(direction: key.direction, service: key.service, backend: key.backend, tls: key.tls,
                                requests: route.requests, responses: responses, latency: route.latency, duration: route.duration))
        }
        for (direction, counters) in delta.tcp.sorted(by: { $0.key < $1.key }) {
            tcp.append(TCP(direction: direction, opened: counters.opened, readBytes: counters.readBytes, writeBytes: counters.writeBytes))
        }
        for (key, count) in delta.proxyErrors.sorted(by: { $0.key < $1.key }) {
            proxyErrors.append(ProxyError(direction: key.direction, cause: key.cause, count: count))
        }
        if delta.policyDecisions.counts.contains(where: { $0 != 0 }) { policyDecisions = delta.policyDecisions.counts }
    }

    /// The proxy-metric deltas as a snapshot, ready to merge into totals.
    public var metrics: MetricsSnapshot {
        var result = MetricsSnapshot()
        for route in routes {
            let key = MetricsSnapshot.RouteKey(direction: route.direction, service: route.service, backend: route.backend, tls: route.tls)
            var counts = MetricsSnapshot.Route(requests: route.requests, latency: route.latency, duration: route.duration)
            for responses in route.responses {
                counts.statusCounts[MetricsSnapshot.Route.slot(responses.statusCode)] &+= responses.count
                if responses.failure && responses.statusCode < 500 { counts.forcedFailures[responses.statusCode, default: 0] &+= responses.count }
            }
            result.routes[key, default: .init()].add(counts)
        }
        for counters in tcp {
            result.merge({
                var one = MetricsSnapshot()
                one.tcp[counters.direction] = .init(opened: counters.opened, readBytes: counters.readBytes, writeBytes: counters.writeBytes)
                return one
            }())
        }
        for error in proxyErrors { result.proxyErrors[.init(direction: error.direction, cause: error.cause), default: 0] &+= error.count }
        for (index, count) in policyDecisions.enumerated() where index < result.policyDecisions.counts.count {
            result.policyDecisions.counts[index] = count
        }
        return result
    }
}


/// Something that adds its counters to every report (proxy metrics, mirror counters …):
/// the proxy's report loop calls each in turn, so a new kind of counter needs a contributor,
/// not a change to the loop. `DeltaTracker` does the bookkeeping for running totals.
public protocol ReportContributor: Sendable {
    /// Adds what changed since the last acknowledged report to `report` (`report.sequence`
    /// names it).
    func contribute(to report: inout TelemetryReport) async throws
    /// The control plane holds every report up to `sequence`. False when that sequence is
    /// unknown here (the contributor then cannot compute deltas and is `restart`ed).
    func acknowledged(_ sequence: UInt64) async -> Bool
    /// Forget the past: later deltas start from the latest totals sent.
    func restart() async
}

/// The running totals sent with each report not yet acknowledged, and those the control
/// plane holds (the base of the next delta).
public actor DeltaTracker<Totals: Sendable> {
    private var acknowledgedTotals: Totals
    private var sent: [(sequence: UInt64, totals: Totals)] = []
    /// Reports kept while unacknowledged; beyond this the oldest are forgotten.
    private let limit = 1024

    public init(zero: Totals) {
        acknowledgedTotals = zero
    }

    /// Records `totals` as sent in report `sequence`; returns the base to subtract.
    public func sending(_ totals: Totals, sequence: UInt64) -> Totals {
        sent.append((sequence, totals))
        if sent.count > limit { sent.removeFirst(sent.count - limit) }
        return acknowledgedTotals
    }

    public func acknowledged(_ sequence: UInt64) -> Bool {
        if sequence == 0 { return true }  // nothing held yet: deltas still start from the start
        guard let index = sent.firstIndex(where: { $0.sequence == sequence }) else { return false }
        acknowledgedTotals = sent[index].totals
        sent.removeFirst(index + 1)
        return true
    }

    public func restart() {
        if let latest = sent.last { acknowledgedTotals = latest.totals }
        sent.removeAll()
    }
}
