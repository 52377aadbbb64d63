import Telemetry

/// A report section made of running totals gathered off the event loops (as a scrape
/// does), sent as deltas against what the control plane acknowledged.
public struct DeltaReportSection<Totals: Sendable>: ReportContributor {
    let gather: @Sendable () async throws -> Totals
    /// Puts `current` minus `base` into the report.
    let fill: @Sendable (inout TelemetryReport, _ current: Totals, _ base: Totals) -> Void
    private let tracker: DeltaTracker<Totals>

    init(zero: Totals, gather: @escaping @Sendable () async throws -> Totals,
         fill: @escaping @Sendable (inout TelemetryReport, Totals, Totals) -> Void) {
        self.gather = gather
        self.fill = fill
        tracker = DeltaTracker(zero: zero)
    }

    public func contribute(to report: inout TelemetryReport) async throws {
        let current = try await gather()
        let base = await tracker.sending(current, sequence: report.sequence)
        fill(&report, current, base)
    }

    public func acknowledged(_ sequence: UInt64) async -> Bool {
        await tracker.acknowledged(sequence)
    }

    public func restart() async {
        await tracker.restart()
    }
}

extension DeltaReportSection where Totals == MetricsSnapshot {
    /// The proxy metrics.
    public static func metrics(of server: ProxyServer) -> Self {
        Self(zero: MetricsSnapshot(), gather: { try await server.metricsSnapshot() }) { report, current, base in
            report.add(current.subtracting(base))
        }
    }
}

extension DeltaReportSection where Totals == MirrorSnapshot {
    /// The mirror counters.
    public static func mirrors(of server: ProxyServer) -> Self {
        Self(zero: MirrorSnapshot(), gather: { try await server.mirrorSnapshot() }) { report, current, base in
            report.mirrors = current.subtracting(base)
        }
    }
}

/// Numbers the reports and keeps the last sequence the control plane acknowledged; the
/// report loop (ControlLink) owns one.
struct ReportSequence {
    private(set) var instance = Self.newInstance()
    private(set) var next: UInt64 = 1
    private(set) var acknowledged: UInt64 = 0

    /// A fresh, empty report for the contributors to fill.
    mutating func start() -> TelemetryReport {
        defer { next += 1 }
        return TelemetryReport(instance: instance, sequence: next, base: acknowledged)
    }

    /// Takes the control plane's answer. Returns whether to send again at once (the control
    /// plane holds a later report than our base: the next delta is rebased on it).
    mutating func take(_ reply: TelemetryReport.Reply, contributors: [any ReportContributor]) async -> Bool {
        var known = true
        for contributor in contributors where !(await contributor.acknowledged(reply.acknowledged)) { known = false }
        guard known else {
            // It names a report we no longer remember: start over as a new instance from
            // the latest totals (what happened in between is dropped, never doubled).
            for contributor in contributors { await contributor.restart() }
            instance = Self.newInstance()
            acknowledged = 0
            return false
        }
        acknowledged = reply.acknowledged
        return !reply.applied
    }

    private static func newInstance() -> String {
        (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()
    }
}
