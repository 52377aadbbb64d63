import Foundation
import Telemetry

/// Telemetry from every proxy (docs/telemetry.md): applies each report exactly once, keeps
/// mesh totals since start (served at `/metrics`) and 10-second buckets of the last ten
/// minutes per (service, backend), from which `eino stat` rows are computed. Percentiles
/// come from the merged histograms, never from averaged percentiles.
///
/// Rows are built from the client side (outbound metrics): that is where the split is
/// decided and where a dead endpoint still shows, as a 502.
public actor TelemetryAggregator {
    /// The windows `eino stat` offers.
    public static let windows: [String: Int] = ["1m": 60, "10m": 600]
    static let bucketSeconds = 10
    static let bucketCount = 600 / bucketSeconds

    struct StatKey: Hashable, Comparable {
        var service: String
        var backend: String
        static func < (a: StatKey, b: StatKey) -> Bool { (a.service, a.backend) < (b.service, b.backend) }
    }

    struct Window {
        var responses: UInt64 = 0
        var failures: UInt64 = 0
        var latency = Histogram()

        mutating func add(_ other: Window) {
            responses &+= other.responses
            failures &+= other.failures
            latency.add(other.latency)
        }
    }

    struct Bucket {
        /// Unix time / bucketSeconds.
        var index: Int
        var rows: [StatKey: Window] = [:]
    }

    private var instances: [String: (applied: UInt64, lastSeen: Date)] = [:]
    private var buckets: [Bucket] = []
    private(set) var totals = MetricsSnapshot()
    private var reports: UInt64 = 0
    private let started: Date

    public init(now: Date = Date()) {
        started = now
    }

    /// Applies `report` when it starts where the last applied one of its instance ended
    /// (or the instance is new here); answers with the last sequence held.
    public func apply(_ report: TelemetryReport, now: Date = Date()) -> TelemetryReport.Reply {
        expireInstances(now: now)
        if let known = instances[report.instance], known.applied != report.base {
            instances[report.instance]?.lastSeen = now
            return .init(acknowledged: known.applied, applied: false)
        }
        instances[report.instance] = (report.sequence, now)
        reports &+= 1
        let delta = report.metrics
        totals.merge(delta)
        var window: [StatKey: Window] = [:]
        for (key, route) in delta.routes where key.direction == "outbound" {
            var row = Window(responses: route.responses, failures: route.failures, latency: route.latency)
            row.add(window[StatKey(service: key.service, backend: key.backend)] ?? Window())
            window[StatKey(service: key.service, backend: key.backend)] = row
        }
        if !window.isEmpty { add(window, at: now) }
        return .init(acknowledged: report.sequence, applied: true)
    }

    private func add(_ rows: [StatKey: Window], at now: Date) {
        let index = Int(now.timeIntervalSince1970) / Self.bucketSeconds
        if buckets.last?.index != index { buckets.append(Bucket(index: index)) }
        buckets.removeAll { $0.index <= index - Self.bucketCount }
        for (key, row) in rows { buckets[buckets.count - 1].rows[key, default: Window()].add(row) }
    }

    /// Instances silent for an hour are forgotten; a later report from one is taken as new.
    private func expireInstances(now: Date) {
        guard instances.count > 64 else { return }
        instances = instances.filter { now.timeIntervalSince($0.value.lastSeen) < 3600 }
    }

    /// Golden metrics over the last `seconds`, for every (service, backend) with traffic.
    /// `rps` divides by the window, or by the time since this control plane started when
    /// that is shorter.
    public func stat(seconds: Int, service: String? = nil, now: Date = Date()) -> [ControlAPI.StatRow] {
        let newest = Int(now.timeIntervalSince1970) / Self.bucketSeconds
        let oldest = newest - seconds / Self.bucketSeconds
        var merged: [StatKey: Window] = [:]
        for bucket in buckets where bucket.index > oldest {
            for (key, row) in bucket.rows where service == nil || key.service == service {
                merged[key, default: Window()].add(row)
            }
        }
        let span = max(1, min(Double(seconds), now.timeIntervalSince(started)))
        return merged.sorted { $0.key < $1.key }.compactMap { key, row in
            guard row.responses > 0 else { return nil }
            func milliseconds(_ q: Double) -> Double { ((row.latency.quantile(q) ?? 0) * 1e6).rounded() / 1e3 }
            return ControlAPI.StatRow(
                service: key.service, backend: key.backend, requests: row.responses,
                successRate: Double(row.responses - row.failures) / Double(row.responses),
                rps: (Double(row.responses) / span * 100).rounded() / 100,
                latencyMsP50: milliseconds(0.5), latencyMsP95: milliseconds(0.95), latencyMsP99: milliseconds(0.99))
        }
    }

    /// Prometheus text: the mesh totals (every proxy's counters summed, since this control
    /// plane started) and the control plane's own process metrics.
    public func prometheusText(now: Date = Date()) -> String {
        var text = totals
        let recent = instances.values.filter { now.timeIntervalSince($0.lastSeen) < 60 }.count
        text.scalars = [
            .init("eino_control_reports_total", "Telemetry reports applied.", .counter, Double(reports)),
            .init("eino_control_reporting_proxies", "Proxies that reported in the last minute.", .gauge, Double(recent)),
        ] + ProcessMetrics.current()
        return text.prometheusText()
    }
}
