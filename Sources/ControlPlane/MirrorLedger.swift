import Hummingbird
import Telemetry

/// Mirror counters summed over every proxy's reports, per (namespace, root service, mirror).
/// Totals since the control plane started; samples are the most recent from any proxy.
public actor MirrorLedger {
    struct Key: Hashable {
        var namespace: String
        var service: String
        var mirror: String
    }

    private var totals: [Key: MirrorStats] = [:]

    public init() {}

    /// Adds one report's deltas.
    public func add(_ deltas: [MirrorStats]) {
        for delta in deltas {
            let key = Key(namespace: delta.namespace, service: delta.service, mirror: delta.mirror)
            if totals[key] == nil {
                totals[key] = delta
            } else {
                totals[key]!.merge(delta)
            }
        }
    }

    public func report(namespace: String, service: String) -> ControlAPI.MirrorReport {
        let mirrors = totals.values
            .filter { $0.namespace == namespace && $0.service == service }
            .sorted { $0.mirror < $1.mirror }
            .map(ControlAPI.MirrorReport.Mirror.init)
        return ControlAPI.MirrorReport(service: service, mirrors: mirrors)
    }
}

extension ControlAPI {
    /// `eino mirror report SERVICE -o json` (CLI.md).
    public struct MirrorReport: Codable, Sendable {
        public struct Mirror: Codable, Sendable {
            public var service: String
            public var sampled: UInt64
            public var sent: UInt64
            public var dropped: UInt64
            public var failed: UInt64
            public var compared: UInt64
            public var status_mismatches: UInt64
            public var header_mismatches: UInt64
            public var body_mismatches: UInt64
            /// Share of the compared copies that differed in anything, 0…1.
            public var mismatch_rate: Double
            /// Medians, interpolated within their histogram bucket; 0 before any.
            public var primary_latency_ms_p50: Double
            public var shadow_latency_ms_p50: Double
            public var samples: [Sample]

            init(_ stats: MirrorStats) {
                service = stats.mirror
                sampled = stats.sampled
                sent = stats.sent
                dropped = stats.droppedTotal
                failed = stats.failed
                compared = stats.compared
                status_mismatches = stats.statusMismatches
                header_mismatches = stats.headerMismatches
                body_mismatches = stats.bodyMismatches
                mismatch_rate = stats.mismatchRate
                primary_latency_ms_p50 = stats.primaryLatency.quantile(0.5).map { $0 * 1000 } ?? 0
                shadow_latency_ms_p50 = stats.shadowLatency.quantile(0.5).map { $0 * 1000 } ?? 0
                samples = stats.samples.reversed().map {
                    Sample(method: $0.method, path: $0.path, primary_status: $0.primaryStatus, shadow_status: $0.shadowStatus, difference: $0.difference)
                }
            }
        }

        public struct Sample: Codable, Sendable {
            public var method: String
            public var path: String
            public var primary_status: Int
            public var shadow_status: Int
            public var difference: String
        }

        public var service: String
        public var mirrors: [Mirror]

        public init(service: String, mirrors: [Mirror]) {
            self.service = service
            self.mirrors = mirrors
        }
    }
}

/// `GET /v1/mirrors/NAMESPACE/SERVICE`: the mirror report of one root service.
enum MirrorRoutes {
    static func add(to group: RouterGroup<ControlRequestContext>, ledger: MirrorLedger) {
        group.get("mirrors/:namespace/:service") { _, context -> Response in
            let namespace = context.parameters.get("namespace") ?? ""
            let service = context.parameters.get("service") ?? ""
            return .json(await ledger.report(namespace: namespace, service: service))
        }
    }
}
