/// Proxy metrics. Each event loop owns one `LoopMetrics` and is the only thread that
/// touches it, so the hot path takes no lock and does no atomic operation. A scrape asks
/// every loop for a `MetricsSnapshot` of its own counters (on that loop) and merges them.

/// Latency bucket upper bounds, in seconds.
public let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/// Counters for one (direction, service, backend): requests by status code and a latency
/// histogram. Held by reference so the proxy can keep a handle per route and skip the lookup.
public final class RouteMetrics {
    public let direction: String
    public let service: String
    public let backend: String
    /// Index = status code 100…599 minus 100; other codes land in the last slot (599).
    var statusCounts = [UInt64](repeating: 0, count: 500)
    var buckets = [UInt64](repeating: 0, count: latencyBuckets.count + 1)
    var latencySum: Double = 0
    var latencyCount: UInt64 = 0

    init(direction: String, service: String, backend: String) {
        self.direction = direction
        self.service = service
        self.backend = backend
    }

    /// Records one finished request: its status and its duration in nanoseconds.
    @inlinable
    public func record(status: Int, nanoseconds: UInt64) {
        let slot = (status >= 100 && status < 600) ? status - 100 : 499
        recordSlot(slot, seconds: Double(nanoseconds) / 1e9)
    }

    @usableFromInline
    func recordSlot(_ slot: Int, seconds: Double) {
        statusCounts[slot] &+= 1
        var index = 0
        while index < latencyBuckets.count && seconds > latencyBuckets[index] { index += 1 }
        buckets[index] &+= 1
        latencySum += seconds
        latencyCount &+= 1
    }
}

/// The metrics of one event loop. Not thread-safe by design: use it on its loop only.
public final class LoopMetrics {
    struct RouteKey: Hashable {
        var direction: String
        var service: String
        var backend: String
    }

    private var routes: [RouteKey: RouteMetrics] = [:]
    public var tcpOpen: [String: Int] = [:]
    public var tcpConnections: [String: UInt64] = [:]
    /// Bytes by direction and flow ("received" from the downstream peer, "sent" to it).
    public var tcpBytes: [String: UInt64] = [:]
    /// Proxy-made errors by direction and cause.
    public var proxyErrors: [String: UInt64] = [:]
    /// Inbound authorization decisions, indexed by ``PolicyDecisions/slot(http:allowed:)``.
    public var policyDecisions = PolicyDecisions()

    public init() {}

    @inlinable
    public func policyDecision(http: Bool, allowed: Bool) {
        policyDecisions.counts[PolicyDecisions.slot(http: http, allowed: allowed)] &+= 1
    }

    public func route(direction: String, service: String, backend: String) -> RouteMetrics {
        let key = RouteKey(direction: direction, service: service, backend: backend)
        if let existing = routes[key] { return existing }
        let created = RouteMetrics(direction: direction, service: service, backend: backend)
        routes[key] = created
        return created
    }

    public func connectionOpened(direction: String) {
        tcpOpen[direction, default: 0] += 1
        tcpConnections[direction, default: 0] += 1
    }

    public func connectionClosed(direction: String, received: UInt64, sent: UInt64) {
        tcpOpen[direction, default: 0] -= 1
        tcpBytes["\(direction)|received", default: 0] &+= received
        tcpBytes["\(direction)|sent", default: 0] &+= sent
    }

    public func proxyError(direction: String, cause: String) {
        proxyErrors["\(direction)|\(cause)", default: 0] &+= 1
    }

    /// A copy of the counters, safe to send to another thread.
    public func snapshot() -> MetricsSnapshot {
        var result = MetricsSnapshot()
        for (key, route) in routes {
            result.routes[MetricsSnapshot.RouteKey(direction: key.direction, service: key.service, backend: key.backend)] =
                MetricsSnapshot.Route(statusCounts: route.statusCounts, buckets: route.buckets, sum: route.latencySum, count: route.latencyCount)
        }
        result.tcpOpen = tcpOpen
        result.tcpConnections = tcpConnections
        result.tcpBytes = tcpBytes
        result.proxyErrors = proxyErrors
        result.policyDecisions = policyDecisions
        return result
    }
}

/// Counters copied off the loops, merged and rendered as Prometheus text.
public struct MetricsSnapshot: Sendable {
    public struct RouteKey: Hashable, Sendable, Comparable {
        public var direction: String
        public var service: String
        public var backend: String

        public static func < (a: RouteKey, b: RouteKey) -> Bool {
            (a.direction, a.service, a.backend) < (b.direction, b.service, b.backend)
        }
    }

    public struct Route: Sendable {
        public var statusCounts: [UInt64]
        public var buckets: [UInt64]
        public var sum: Double
        public var count: UInt64
    }

    public var routes: [RouteKey: Route] = [:]
    public var tcpOpen: [String: Int] = [:]
    public var tcpConnections: [String: UInt64] = [:]
    public var tcpBytes: [String: UInt64] = [:]
    public var proxyErrors: [String: UInt64] = [:]
    public var policyDecisions = PolicyDecisions()
    /// Extra gauges set by the scraper (config version, readiness …), rendered as is.
    public var gauges: [(name: String, help: String, value: Double)] = []

    public init() {}

    public mutating func merge(_ other: MetricsSnapshot) {
        for (key, route) in other.routes {
            if var mine = routes[key] {
                for index in mine.statusCounts.indices { mine.statusCounts[index] &+= route.statusCounts[index] }
                for index in mine.buckets.indices { mine.buckets[index] &+= route.buckets[index] }
                mine.sum += route.sum
                mine.count &+= route.count
                routes[key] = mine
            } else {
                routes[key] = route
            }
        }
        tcpOpen.merge(other.tcpOpen, uniquingKeysWith: +)
        tcpConnections.merge(other.tcpConnections, uniquingKeysWith: &+)
        tcpBytes.merge(other.tcpBytes, uniquingKeysWith: &+)
        proxyErrors.merge(other.proxyErrors, uniquingKeysWith: &+)
        for index in policyDecisions.counts.indices { policyDecisions.counts[index] &+= other.policyDecisions.counts[index] }
    }

    /// Requests counted for one route and status code (all codes when nil).
    public func requests(direction: String, service: String, backend: String, status: Int? = nil) -> UInt64 {
        guard let route = routes[RouteKey(direction: direction, service: service, backend: backend)] else { return 0 }
        if let status { return route.statusCounts[status - 100] }
        return route.statusCounts.reduce(0, &+)
    }

    /// Prometheus text exposition format 0.0.4.
    public func prometheusText() -> String {
        var out = ""
        out.reserveCapacity(4096)
        func escape(_ value: String) -> String {
            var result = ""
            for character in value {
                switch character {
                case "\\": result += "\\\\"
                case "\"": result += "\\\""
                case "\n": result += "\\n"
                default: result.append(character)
                }
            }
            return result
        }
        func number(_ value: Double) -> String {
            if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            return "\(value)"
        }
        let sortedRoutes = routes.sorted { $0.key < $1.key }
        out += "# HELP eino_requests_total HTTP requests handled by the proxy, by direction, service, backend and status code.\n"
        out += "# TYPE eino_requests_total counter\n"
        for (key, route) in sortedRoutes {
            let labels = "direction=\"\(escape(key.direction))\",service=\"\(escape(key.service))\",backend=\"\(escape(key.backend))\""
            for (slot, count) in route.statusCounts.enumerated() where count > 0 {
                out += "eino_requests_total{\(labels),code=\"\(slot + 100)\"} \(count)\n"
            }
        }
        out += "# HELP eino_request_duration_seconds Time from the request head to the end of the response.\n"
        out += "# TYPE eino_request_duration_seconds histogram\n"
        for (key, route) in sortedRoutes {
            let labels = "direction=\"\(escape(key.direction))\",service=\"\(escape(key.service))\",backend=\"\(escape(key.backend))\""
            var cumulative: UInt64 = 0
            for (index, bound) in latencyBuckets.enumerated() {
                cumulative &+= route.buckets[index]
                out += "eino_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            cumulative &+= route.buckets[latencyBuckets.count]
            out += "eino_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
            out += "eino_request_duration_seconds_sum{\(labels)} \(route.sum)\n"
            out += "eino_request_duration_seconds_count{\(labels)} \(route.count)\n"
        }
        out += "# HELP eino_tcp_open_connections Downstream connections open now, by listener direction.\n"
        out += "# TYPE eino_tcp_open_connections gauge\n"
        for (direction, value) in tcpOpen.sorted(by: { $0.key < $1.key }) {
            out += "eino_tcp_open_connections{direction=\"\(direction)\"} \(value)\n"
        }
        out += "# HELP eino_tcp_connections_total Downstream connections accepted, by listener direction.\n"
        out += "# TYPE eino_tcp_connections_total counter\n"
        for (direction, value) in tcpConnections.sorted(by: { $0.key < $1.key }) {
            out += "eino_tcp_connections_total{direction=\"\(direction)\"} \(value)\n"
        }
        out += "# HELP eino_tcp_bytes_total Bytes of closed downstream connections, received from and sent to the peer.\n"
        out += "# TYPE eino_tcp_bytes_total counter\n"
        for (key, value) in tcpBytes.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|", maxSplits: 1)
            out += "eino_tcp_bytes_total{direction=\"\(parts[0])\",flow=\"\(parts.count > 1 ? parts[1] : "")\"} \(value)\n"
        }
        out += "# HELP eino_proxy_errors_total Responses and resets made by the proxy itself, by cause.\n"
        out += "# TYPE eino_proxy_errors_total counter\n"
        for (key, value) in proxyErrors.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|", maxSplits: 1)
            out += "eino_proxy_errors_total{direction=\"\(parts[0])\",cause=\"\(escape(parts.count > 1 ? String(parts[1]) : ""))\"} \(value)\n"
        }
        out += "# HELP eino_policy_decisions_total Inbound TrafficTarget authorization decisions, by protocol (HTTP request or opaque TCP connection).\n"
        out += "# TYPE eino_policy_decisions_total counter\n"
        for (slot, count) in policyDecisions.counts.enumerated() where count > 0 {
            let (http, allowed) = PolicyDecisions.labels(of: slot)
            out += "eino_policy_decisions_total{direction=\"inbound\",protocol=\"\(http ? "http" : "tcp")\",decision=\"\(allowed ? "allow" : "deny")\"} \(count)\n"
        }
        for gauge in gauges {
            out += "# HELP \(gauge.name) \(gauge.help)\n# TYPE \(gauge.name) gauge\n\(gauge.name) \(number(gauge.value))\n"
        }
        return out
    }
}

/// Counts of inbound authorization decisions: four fixed series, so counting is an array
/// increment and builds no key.
public struct PolicyDecisions: Sendable {
    public var counts = [UInt64](repeating: 0, count: 4)

    public init() {}

    @inlinable
    public static func slot(http: Bool, allowed: Bool) -> Int { (http ? 0 : 2) + (allowed ? 0 : 1) }

    static func labels(of slot: Int) -> (http: Bool, allowed: Bool) { (slot < 2, slot % 2 == 0) }
}
