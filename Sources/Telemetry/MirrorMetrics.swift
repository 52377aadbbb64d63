import Foundation

/// Traffic-mirror counters. Like the request metrics, each event loop owns its own
/// `LoopMirrorMetrics` (no lock on the request path); a scrape or a report merges copies.

/// One mismatch, kept for the report.
public struct MirrorSample: Codable, Sendable, Equatable {
    public var method: String
    public var path: String
    public var primaryStatus: Int
    public var shadowStatus: Int
    public var difference: String
    /// Unix seconds; newer samples replace older ones.
    public var time: Double

    public init(method: String, path: String, primaryStatus: Int, shadowStatus: Int, difference: String, time: Double) {
        self.method = method
        self.path = path
        self.primaryStatus = primaryStatus
        self.shadowStatus = shadowStatus
        self.difference = difference
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case method, path, difference, time
        case primaryStatus = "primary_status"
        case shadowStatus = "shadow_status"
    }
}

/// The counters of one (root service, mirror service) pair, as copied off the loops, sent
/// to the control plane and summed there.
public struct MirrorStats: Codable, Sendable, Equatable {
    /// Samples kept per mirror; older ones drop out.
    public static let sampleLimit = 20

    /// The root service and its namespace (the mirror service lives in the same namespace).
    public var namespace: String
    public var service: String
    public var mirror: String
    /// Requests chosen for copying (by percent and route).
    public var sampled: UInt64 = 0
    /// Copies sent to the mirror.
    public var sent: UInt64 = 0
    /// Chosen but not sent, by reason (`inflight`, `body_too_large`, `unsupported`, `no_endpoints`).
    public var dropped: [String: UInt64] = [:]
    /// Copies that got no response, or a 5xx.
    public var failed: UInt64 = 0
    /// Copies whose response was compared with the primary's, and how many differed at all.
    public var compared: UInt64 = 0
    public var mismatched: UInt64 = 0
    public var statusMismatches: UInt64 = 0
    public var headerMismatches: UInt64 = 0
    public var bodyMismatches: UInt64 = 0
    public var primaryLatency = Histogram()
    public var shadowLatency = Histogram()
    /// Most recent last.
    public var samples: [MirrorSample] = []

    public init(namespace: String, service: String, mirror: String) {
        self.namespace = namespace
        self.service = service
        self.mirror = mirror
    }

    public var droppedTotal: UInt64 { dropped.values.reduce(0, &+) }

    /// Mismatched share of the compared copies, 0 when none were compared.
    public var mismatchRate: Double { compared == 0 ? 0 : Double(mismatched) / Double(compared) }

    public mutating func merge(_ other: MirrorStats) {
        sampled &+= other.sampled
        sent &+= other.sent
        dropped.merge(other.dropped, uniquingKeysWith: &+)
        failed &+= other.failed
        compared &+= other.compared
        mismatched &+= other.mismatched
        statusMismatches &+= other.statusMismatches
        headerMismatches &+= other.headerMismatches
        bodyMismatches &+= other.bodyMismatches
        primaryLatency.add(other.primaryLatency)
        shadowLatency.add(other.shadowLatency)
        samples = Array((samples + other.samples).sorted { $0.time < $1.time }.suffix(Self.sampleLimit))
    }

    /// What was counted since `earlier` (the same pair, counted before): counters and
    /// histograms subtracted, samples newer than its newest. For reports that send deltas.
    public func subtracting(_ earlier: MirrorStats) -> MirrorStats {
        var delta = self
        delta.sampled &-= earlier.sampled
        delta.sent &-= earlier.sent
        for (reason, count) in earlier.dropped { delta.dropped[reason, default: 0] &-= count }
        delta.dropped = delta.dropped.filter { $0.value != 0 }
        delta.failed &-= earlier.failed
        delta.compared &-= earlier.compared
        delta.mismatched &-= earlier.mismatched
        delta.statusMismatches &-= earlier.statusMismatches
        delta.headerMismatches &-= earlier.headerMismatches
        delta.bodyMismatches &-= earlier.bodyMismatches
        delta.primaryLatency = primaryLatency.subtracting(earlier.primaryLatency)
        delta.shadowLatency = shadowLatency.subtracting(earlier.shadowLatency)
        let newest = earlier.samples.last?.time ?? -Double.infinity
        delta.samples = samples.filter { $0.time > newest }
        return delta
    }

    /// Nothing was counted.
    public var isEmpty: Bool {
        sampled == 0 && sent == 0 && droppedTotal == 0 && failed == 0 && compared == 0 && shadowLatency.count == 0 && primaryLatency.count == 0
    }

    enum CodingKeys: String, CodingKey {
        case namespace, service, mirror, sampled, sent, dropped, failed, compared, mismatched, samples
        case statusMismatches = "status_mismatches"
        case headerMismatches = "header_mismatches"
        case bodyMismatches = "body_mismatches"
        case primaryLatency = "primary_latency"
        case shadowLatency = "shadow_latency"
    }
}

/// The counters of one pair on one loop, held by reference so the proxy keeps a handle.
public final class MirrorCounters {
    public var stats: MirrorStats

    init(namespace: String, service: String, mirror: String) {
        stats = MirrorStats(namespace: namespace, service: service, mirror: mirror)
    }

    public func addSample(_ sample: MirrorSample) {
        if stats.samples.count >= MirrorStats.sampleLimit { stats.samples.removeFirst() }
        stats.samples.append(sample)
    }
}

/// The mirror counters of one event loop. Use it on its loop only.
public final class LoopMirrorMetrics {
    struct Key: Hashable {
        var namespace: String
        var service: String
        var mirror: String
    }

    private var counters: [Key: MirrorCounters] = [:]
    /// Copies in flight from this loop now.
    public var inflight = 0

    public init() {}

    public func counters(namespace: String, service: String, mirror: String) -> MirrorCounters {
        let key = Key(namespace: namespace, service: service, mirror: mirror)
        if let existing = counters[key] { return existing }
        let created = MirrorCounters(namespace: namespace, service: service, mirror: mirror)
        counters[key] = created
        return created
    }

    public func snapshot() -> MirrorSnapshot {
        MirrorSnapshot(stats: counters.values.map(\.stats), inflight: inflight)
    }
}

/// Mirror counters copied off the loops and merged.
public struct MirrorSnapshot: Sendable {
    public var stats: [MirrorStats]
    public var inflight: Int

    public init(stats: [MirrorStats] = [], inflight: Int = 0) {
        self.stats = stats
        self.inflight = inflight
    }

    public mutating func merge(_ other: MirrorSnapshot) {
        for entry in other.stats {
            if let index = stats.firstIndex(where: { $0.namespace == entry.namespace && $0.service == entry.service && $0.mirror == entry.mirror }) {
                stats[index].merge(entry)
            } else {
                stats.append(entry)
            }
        }
        inflight += other.inflight
    }

    /// The pairs that counted anything since `earlier`, as deltas (`MirrorStats.subtracting`).
    public func subtracting(_ earlier: MirrorSnapshot) -> [MirrorStats] {
        stats.compactMap { entry in
            let before = earlier.stats.first { $0.namespace == entry.namespace && $0.service == entry.service && $0.mirror == entry.mirror }
            let delta = before.map { entry.subtracting($0) } ?? entry
            return delta.isEmpty && delta.samples.isEmpty ? nil : delta
        }.sorted { ($0.namespace, $0.service, $0.mirror) < ($1.namespace, $1.service, $1.mirror) }
    }

    /// `{"inflight": N, "mirrors": [MirrorStats…]}`, sorted by service and mirror.
    public func json() -> String {
        struct Document: Encodable {
            var inflight: Int
            var mirrors: [MirrorStats]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let sorted = stats.sorted { ($0.service, $0.mirror) < ($1.service, $1.mirror) }
        let data = (try? encoder.encode(Document(inflight: inflight, mirrors: sorted))) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public func prometheusText() -> String {
        var out = ""
        let sorted = stats.sorted { ($0.service, $0.mirror) < ($1.service, $1.mirror) }
        func family(_ name: String, _ type: String, _ help: String, _ lines: (MirrorStats, String) -> [String]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for entry in sorted {
                let labels = "service=\"\(MetricsSnapshot.escape(entry.service))\",mirror=\"\(MetricsSnapshot.escape(entry.mirror))\""
                for line in lines(entry, labels) { out += line + "\n" }
            }
        }
        family("eino_mirror_sampled_total", "counter", "Requests chosen for mirroring.") { entry, labels in
            ["eino_mirror_sampled_total{\(labels)} \(entry.sampled)"]
        }
        family("eino_mirror_sent_total", "counter", "Copies sent to the mirror service.") { entry, labels in
            ["eino_mirror_sent_total{\(labels)} \(entry.sent)"]
        }
        family("eino_mirror_dropped_total", "counter", "Chosen requests not copied, by reason.") { entry, labels in
            entry.dropped.sorted { $0.key < $1.key }.map { "eino_mirror_dropped_total{\(labels),reason=\"\($0.key)\"} \($0.value)" }
        }
        family("eino_mirror_failed_total", "counter", "Copies that got no response or a 5xx.") { entry, labels in
            ["eino_mirror_failed_total{\(labels)} \(entry.failed)"]
        }
        family("eino_mirror_compared_total", "counter", "Copies whose response was compared with the primary's, by result.") { entry, labels in
            ["eino_mirror_compared_total{\(labels),result=\"match\"} \(entry.compared - entry.mismatched)",
             "eino_mirror_compared_total{\(labels),result=\"mismatch\"} \(entry.mismatched)"]
        }
        family("eino_mirror_mismatches_total", "counter", "Compared copies that differed, by the part that differed.") { entry, labels in
            ["eino_mirror_mismatches_total{\(labels),part=\"status\"} \(entry.statusMismatches)",
             "eino_mirror_mismatches_total{\(labels),part=\"header\"} \(entry.headerMismatches)",
             "eino_mirror_mismatches_total{\(labels),part=\"body\"} \(entry.bodyMismatches)"]
        }
        family("eino_mirror_latency_seconds", "histogram", "Duration of mirrored exchanges: the primary's and the shadow's.") { entry, labels in
            let text = entry.primaryLatency.prometheusLines("eino_mirror_latency_seconds", labels: labels + ",side=\"primary\"")
                + entry.shadowLatency.prometheusLines("eino_mirror_latency_seconds", labels: labels + ",side=\"shadow\"")
            return [String(text.dropLast())]
        }
        out += "# HELP eino_mirror_inflight Copies in flight now.\n# TYPE eino_mirror_inflight gauge\neino_mirror_inflight \(inflight)\n"
        return out
    }
}
