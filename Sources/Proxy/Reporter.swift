import Telemetry

/// The proxy metrics as a report section: running totals gathered off the event loops (as
/// a scrape does), sent as deltas against what the control plane acknowledged.
public struct MetricsReportSection: ReportContributor {
    let gather: @Sendable () async throws -> MetricsSnapshot
    private let tracker = DeltaTracker(zero: MetricsSnapshot())

    public init(server: ProxyServer) {
        gather = { try await server.metricsSnapshot() }
    }

    public func contribute(to report: inout TelemetryReport) async throws {
        let current = try await gather()
        let base = await tracker.sending(current, sequence: report.sequence)
        report.add(current.subtracting(base))
    }

    public func acknowledged(_ sequence: UInt64) async -> Bool {
        await tracker.acknowledged(sequence)
    }

    public func restart() async {
        await tracker.restart()
    }
}

/// The mirror counters as a report section, like the metrics: deltas against what the
/// control plane acknowledged.
public struct MirrorReportSection: ReportContributor {
    let gather: @Sendable () async throws -> MirrorSnapshot
    private let tracker = DeltaTracker(zero: MirrorSnapshot())

    public init(server: ProxyServer) {
        gather = { try await server.mirrorSnapshot() }
    }

    public func contribute(to report: inout TelemetryReport) async throws {
        let current = try await gather()
        let base = await tracker.sending(current, sequence: report.sequence)
        report.mirrors = current.subtracting(base)
    }

    public func acknowledged(_ sequence: UInt64) async -> Bool {
        await tracker.acknowledged(sequence)
    }

    public func restart() async {
        await tracker.restart()
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
