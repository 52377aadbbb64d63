/// Proxy metrics. Each event loop owns one `LoopMetrics` and is the only thread that
/// touches it, so the hot path takes no lock and does no atomic operation. A scrape (or a
/// report to the control plane) asks every loop for a `MetricsSnapshot` of its own counters
/// (on that loop) and merges them. docs/telemetry.md lists every metric.

/// Latency bucket upper bounds, in seconds (the `le` labels; +Inf follows).
public let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/// Counters for one (direction, service, backend, tls): requests, responses by status code
/// and classification, and two histograms. Held by reference so the proxy keeps a handle
/// per route and skips the lookup; the counters live in one flat buffer so recording is a
/// few integer additions with no bounds or uniqueness checks.
public final class RouteMetrics {
    public let key: MetricsSnapshot.RouteKey

    // Layout of `counters`.
    static let requestsSlot = 0
    static let statusBase = 1
    /// Status 100…599 minus 100; other codes land in the last slot (599).
    static let statusSlots = 500
    static let bucketCount = latencyBuckets.count + 1
    static let latencyBase = statusBase + statusSlots
    static let durationBase = latencyBase + bucketCount
    static let latencySumSlot = durationBase + bucketCount
    static let durationSumSlot = latencySumSlot + 1
    static let slotCount = durationSumSlot + 1
    /// Bucket bounds in nanoseconds, so recording needs no floating point.
    static let boundsNanoseconds: [UInt64] = latencyBuckets.map { UInt64(($0 * 1e9).rounded()) }

    private let counters: UnsafeMutablePointer<UInt64>
    /// Responses classified as failures although their status is below 500 (made by the
    /// proxy, or cut after the head was sent), by status. Rare, so a dictionary.
    private var forcedFailures: [Int: UInt64] = [:]

    init(key: MetricsSnapshot.RouteKey) {
        self.key = key
        counters = .allocate(capacity: Self.slotCount)
        counters.initialize(repeating: 0, count: Self.slotCount)
    }

    deinit {
        counters.deallocate()
    }

    /// A request was routed here.
    public func requestStarted() {
        counters[Self.requestsSlot] &+= 1
    }

    /// One finished exchange: its status, the time to the response head and to the end of
    /// the stream, and whether something other than its status makes it a failure (the
    /// proxy answered itself, or the stream was cut).
    public func record(status: Int, latencyNanoseconds: UInt64, durationNanoseconds: UInt64, failure: Bool = false) {
        let slot = (status >= 100 && status < 600) ? status - 100 : Self.statusSlots - 1
        counters[Self.statusBase + slot] &+= 1
        counters[Self.latencyBase + Self.bucket(latencyNanoseconds)] &+= 1
        counters[Self.durationBase + Self.bucket(durationNanoseconds)] &+= 1
        counters[Self.latencySumSlot] &+= latencyNanoseconds
        counters[Self.durationSumSlot] &+= durationNanoseconds
        if failure && slot < 400 { forcedFailures[slot + 100, default: 0] &+= 1 }
    }

    @inline(__always)
    static func bucket(_ nanoseconds: UInt64) -> Int {
        var index = 0
        while index < boundsNanoseconds.count && nanoseconds > boundsNanoseconds[index] { index += 1 }
        return index
    }

    func snapshot() -> MetricsSnapshot.Route {
        func histogram(_ base: Int, _ sum: Int) -> Histogram {
            Histogram(counts: Array(UnsafeBufferPointer(start: counters + base, count: Self.bucketCount)), sumNanoseconds: counters[sum])
        }
        return MetricsSnapshot.Route(
            requests: counters[Self.requestsSlot],
            statusCounts: Array(UnsafeBufferPointer(start: counters + Self.statusBase, count: Self.statusSlots)),
            forcedFailures: forcedFailures,
            latency: histogram(Self.latencyBase, Self.latencySumSlot),
            duration: histogram(Self.durationBase, Self.durationSumSlot))
    }
}

/// The metrics of one event loop. Not thread-safe by design: use it on its loop only.
public final class LoopMetrics {
    private var routes: [MetricsSnapshot.RouteKey: RouteMetrics] = [:]
    private var tcp: [String: MetricsSnapshot.TCP] = [:]
    private var proxyErrors: [MetricsSnapshot.ErrorKey: UInt64] = [:]
    /// Inbound authorization decisions, indexed by ``PolicyDecisions/slot(http:allowed:)``.
    public var policyDecisions = PolicyDecisions()
    /// Outbound traffic passed through to a destination outside the mesh.
    public var unmeshed = Unmeshed()

    public init() {}

    @inlinable
    public func policyDecision(http: Bool, allowed: Bool) {
        policyDecisions.counts[PolicyDecisions.slot(http: http, allowed: allowed)] &+= 1
    }

    /// The handle for a route, created on first use. Callers keep it: this lookup hashes strings.
    public func route(direction: String, service: String, backend: String, tls: Bool) -> RouteMetrics {
        let key = MetricsSnapshot.RouteKey(direction: direction, service: service, backend: backend, tls: tls)
        if let existing = routes[key] { return existing }
        let created = RouteMetrics(key: key)
        routes[key] = created
        return created
    }

    public func connectionOpened(direction: String) {
        tcp[direction, default: .init()].open += 1
        tcp[direction, default: .init()].opened &+= 1
    }

    /// A downstream connection closed: `read` bytes came from the peer, `written` went to it.
    public func connectionClosed(direction: String, read: UInt64, written: UInt64) {
        tcp[direction, default: .init()].open -= 1
        tcp[direction, default: .init()].readBytes &+= read
        tcp[direction, default: .init()].writeBytes &+= written
    }

    public func proxyError(direction: String, cause: String) {
        proxyErrors[MetricsSnapshot.ErrorKey(direction: direction, cause: cause), default: 0] &+= 1
    }

    /// A copy of the counters, safe to send to another thread.
    public func snapshot() -> MetricsSnapshot {
        var result = MetricsSnapshot()
        for (key, route) in routes { result.routes[key] = route.snapshot() }
        result.tcp = tcp
        result.proxyErrors = proxyErrors
        result.policyDecisions = policyDecisions
        result.unmeshed = unmeshed
        return result
    }
}

/// Bucket counts (not cumulative; the last bucket is +Inf) over `latencyBuckets`, and the
/// sum of the observations.
public struct Histogram: Sendable, Equatable, Codable {
    public var counts: [UInt64]
    public var sumNanoseconds: UInt64

    public init(counts: [UInt64] = Array(repeating: 0, count: latencyBuckets.count + 1), sumNanoseconds: UInt64 = 0) {
        self.counts = counts
        self.sumNanoseconds = sumNanoseconds
    }

    public var count: UInt64 { counts.reduce(0, &+) }

    public mutating func add(_ other: Histogram) {
        for index in counts.indices where index < other.counts.count { counts[index] &+= other.counts[index] }
        sumNanoseconds &+= other.sumNanoseconds
    }

    /// Counts one observation.
    public mutating func record(nanoseconds: UInt64) {
        counts[RouteMetrics.bucket(nanoseconds)] &+= 1
        sumNanoseconds &+= nanoseconds
    }

    /// The `_bucket`, `_sum` and `_count` lines of metric `name` for one label set.
    func prometheusLines(_ name: String, labels: String) -> String {
        var out = ""
        var cumulative: UInt64 = 0
        for (index, bound) in latencyBuckets.enumerated() {
            cumulative &+= counts[index]
            out += "\(name)_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative &+= counts[latencyBuckets.count]
        out += "\(name)_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
        out += "\(name)_sum{\(labels)} \(Double(sumNanoseconds) / 1e9)\n"
        out += "\(name)_count{\(labels)} \(cumulative)\n"
        return out
    }

    public func subtracting(_ other: Histogram) -> Histogram {
        var result = self
        for index in counts.indices where index < other.counts.count { result.counts[index] &-= other.counts[index] }
        result.sumNanoseconds &-= other.sumNanoseconds
        return result
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does; nil when empty. A quantile in +Inf is the last finite bound.
    public func quantile(_ q: Double) -> Double? {
        let total = count
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var below: UInt64 = 0
        for (index, bucketCount) in counts.enumerated() {
            let through = below + bucketCount
            if Double(through) >= rank && bucketCount > 0 {
                guard index < latencyBuckets.count else { return latencyBuckets[latencyBuckets.count - 1] }
                let lower = index == 0 ? 0 : latencyBuckets[index - 1]
                let upper = latencyBuckets[index]
                return lower + (upper - lower) * (rank - Double(below)) / Double(bucketCount)
            }
            below = through
        }
        return latencyBuckets[latencyBuckets.count - 1]
    }
}

/// Counters copied off the loops, merged, diffed for reports and rendered as Prometheus text.
public struct MetricsSnapshot: Sendable {
    public struct RouteKey: Hashable, Sendable, Comparable {
        public var direction: String
        public var service: String
        public var backend: String
        /// The exchange went over mTLS (inbound from a peer proxy, outbound to a mesh endpoint).
        public var tls: Bool

        public init(direction: String, service: String, backend: String, tls: Bool) {
            self.direction = direction
            self.service = service
            self.backend = backend
            self.tls = tls
        }

        public static func < (a: RouteKey, b: RouteKey) -> Bool {
            (a.direction, a.service, a.backend, a.tls ? 1 : 0) < (b.direction, b.service, b.backend, b.tls ? 1 : 0)
        }
    }

    public struct Route: Sendable, Equatable {
        public var requests: UInt64
        /// All responses by status slot (status − 100; slot 499 also holds codes outside 100…599).
        public var statusCounts: [UInt64]
        /// Responses below 500 classified as failures, by status.
        public var forcedFailures: [Int: UInt64]
        /// Time to the response head.
        public var latency: Histogram
        /// Time to the end of the response stream.
        public var duration: Histogram

        public init(requests: UInt64 = 0, statusCounts: [UInt64] = Array(repeating: 0, count: 500), forcedFailures: [Int: UInt64] = [:],
                    latency: Histogram = Histogram(), duration: Histogram = Histogram()) {
            self.requests = requests
            self.statusCounts = statusCounts
            self.forcedFailures = forcedFailures
            self.latency = latency
            self.duration = duration
        }

        public var responses: UInt64 { statusCounts.reduce(0, &+) }

        /// Responses with `status` and the given classification.
        public func responses(status: Int, failure: Bool) -> UInt64 {
            let all = statusCounts[Self.slot(status)]
            if status >= 500 { return failure ? all : 0 }
            let forced = forcedFailures[status] ?? 0
            return failure ? forced : all &- forced
        }

        /// Responses classified as failures: 5xx, proxy-made answers and cut streams.
        public var failures: UInt64 {
            statusCounts[400...].reduce(0, &+) &+ forcedFailures.values.reduce(0, &+)
        }

        static func slot(_ status: Int) -> Int { (status >= 100 && status < 600) ? status - 100 : 499 }

        public mutating func add(_ other: Route) {
            requests &+= other.requests
            for index in statusCounts.indices { statusCounts[index] &+= other.statusCounts[index] }
            forcedFailures.merge(other.forcedFailures, uniquingKeysWith: &+)
            latency.add(other.latency)
            duration.add(other.duration)
        }

        public func subtracting(_ other: Route) -> Route {
            var result = self
            result.requests &-= other.requests
            for index in statusCounts.indices { result.statusCounts[index] &-= other.statusCounts[index] }
            for (status, count) in other.forcedFailures { result.forcedFailures[status, default: 0] &-= count }
            result.forcedFailures = result.forcedFailures.filter { $0.value != 0 }
            result.latency = latency.subtracting(other.latency)
            result.duration = duration.subtracting(other.duration)
            return result
        }
    }

    /// Downstream connections of one listener direction.
    public struct TCP: Sendable, Equatable {
        /// Open now (a gauge: not carried in report deltas).
        public var open: Int = 0
        public var opened: UInt64 = 0
        public var readBytes: UInt64 = 0
        public var writeBytes: UInt64 = 0

        public init(open: Int = 0, opened: UInt64 = 0, readBytes: UInt64 = 0, writeBytes: UInt64 = 0) {
            self.open = open
            self.opened = opened
            self.readBytes = readBytes
            self.writeBytes = writeBytes
        }
    }

    public struct ErrorKey: Hashable, Sendable, Comparable {
        public var direction: String
        public var cause: String

        public init(direction: String, cause: String) {
            self.direction = direction
            self.cause = cause
        }

        public static func < (a: ErrorKey, b: ErrorKey) -> Bool { (a.direction, a.cause) < (b.direction, b.cause) }
    }

    /// A value without labels set by whoever renders (config version, process metrics …).
    public struct Scalar: Sendable {
        public enum Kind: String, Sendable { case gauge, counter }
        public var name: String
        public var help: String
        public var kind: Kind
        public var value: Double

        public init(_ name: String, _ help: String, _ kind: Kind = .gauge, _ value: Double) {
            self.name = name
            self.help = help
            self.kind = kind
            self.value = value
        }
    }

    public var routes: [RouteKey: Route] = [:]
    public var tcp: [String: TCP] = [:]
    public var proxyErrors: [ErrorKey: UInt64] = [:]
    public var policyDecisions = PolicyDecisions()
    public var unmeshed = Unmeshed()
    public var scalars: [Scalar] = []

    public init() {}

    public mutating func merge(_ other: MetricsSnapshot) {
        for (key, route) in other.routes {
            routes[key, default: Route()].add(route)
        }
        for (direction, counters) in other.tcp {
            var mine = tcp[direction] ?? TCP()
            mine.open += counters.open
            mine.opened &+= counters.opened
            mine.readBytes &+= counters.readBytes
            mine.writeBytes &+= counters.writeBytes
            tcp[direction] = mine
        }
        proxyErrors.merge(other.proxyErrors, uniquingKeysWith: &+)
        for index in policyDecisions.counts.indices { policyDecisions.counts[index] &+= other.policyDecisions.counts[index] }
        unmeshed.httpRequests &+= other.unmeshed.httpRequests
        unmeshed.tcpConnections &+= other.unmeshed.tcpConnections
    }

    /// The counters added since `base` (an earlier snapshot of the same proxy); gauges and
    /// scalars are left out, and so is anything that did not change.
    public func subtracting(_ base: MetricsSnapshot) -> MetricsSnapshot {
        var result = MetricsSnapshot()
        for (key, route) in routes {
            let delta = base.routes[key].map { route.subtracting($0) } ?? route
            if delta != Route() { result.routes[key] = delta }
        }
        for (direction, counters) in tcp {
            let old = base.tcp[direction] ?? TCP()
            let delta = TCP(opened: counters.opened &- old.opened, readBytes: counters.readBytes &- old.readBytes,
                            writeBytes: counters.writeBytes &- old.writeBytes)
            if delta != TCP() { result.tcp[direction] = delta }
        }
        for (key, count) in proxyErrors where count != base.proxyErrors[key] ?? 0 {
            result.proxyErrors[key] = count &- (base.proxyErrors[key] ?? 0)
        }
        for index in policyDecisions.counts.indices {
            result.policyDecisions.counts[index] = policyDecisions.counts[index] &- base.policyDecisions.counts[index]
        }
        result.unmeshed = Unmeshed(httpRequests: unmeshed.httpRequests &- base.unmeshed.httpRequests,
                                   tcpConnections: unmeshed.tcpConnections &- base.unmeshed.tcpConnections)
        return result
    }

    /// Requests counted for one route (summed over `tls`).
    public func requests(direction: String, service: String, backend: String) -> UInt64 {
        routes.filter { $0.key.direction == direction && $0.key.service == service && $0.key.backend == backend }
            .values.reduce(0) { $0 &+ $1.requests }
    }

    /// Responses counted for one route and status code (all codes when nil), summed over `tls`.
    public func responses(direction: String, service: String, backend: String, status: Int? = nil) -> UInt64 {
        routes.filter { $0.key.direction == direction && $0.key.service == service && $0.key.backend == backend }
            .values.reduce(0) { total, route in total &+ (status.map { route.statusCounts[Route.slot($0)] } ?? route.responses) }
    }

    /// Prometheus text exposition format 0.0.4.
    public func prometheusText() -> String {
        var out = ""
        out.reserveCapacity(8192)
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        let sortedRoutes = routes.sorted { $0.key < $1.key }.map { (labels: Self.labels($0.key), route: $0.value) }

        header("eino_requests_total", "counter", "HTTP requests routed by the proxy.")
        for (labels, route) in sortedRoutes where route.requests > 0 {
            out += "eino_requests_total{\(labels)} \(route.requests)\n"
        }
        header("eino_responses_total", "counter", "HTTP responses by status code and classification (failure: 5xx, proxy-made, cut).")
        for (labels, route) in sortedRoutes {
            for (slot, count) in route.statusCounts.enumerated() where count > 0 {
                let status = slot + 100
                for failure in [false, true] {
                    let value = route.responses(status: status, failure: failure)
                    guard value > 0 else { continue }
                    out += "eino_responses_total{\(labels),status_code=\"\(status)\",classification=\"\(failure ? "failure" : "success")\"} \(value)\n"
                }
            }
        }
        for (name, help, pick) in [
            ("eino_response_latency_seconds", "Time from the request head to the response head.", { (route: Route) in route.latency }),
            ("eino_request_duration_seconds", "Time from the request head to the end of the response stream.", { (route: Route) in route.duration }),
        ] {
            header(name, "histogram", help)
            for (labels, route) in sortedRoutes {
                out += pick(route).prometheusLines(name, labels: labels)
            }
        }
        let sortedTCP = tcp.sorted { $0.key < $1.key }
        for (name, type, help, pick) in [
            ("eino_tcp_open_connections", "gauge", "Downstream connections open now, by listener direction.", { (tcp: TCP) in String(tcp.open) }),
            ("eino_tcp_open_total", "counter", "Downstream connections accepted, by listener direction.", { (tcp: TCP) in String(tcp.opened) }),
            ("eino_tcp_read_bytes_total", "counter", "Bytes read from downstream peers, counted when the connection closes.", { (tcp: TCP) in String(tcp.readBytes) }),
            ("eino_tcp_write_bytes_total", "counter", "Bytes written to downstream peers, counted when the connection closes.", { (tcp: TCP) in String(tcp.writeBytes) }),
        ] {
            header(name, type, help)
            for (direction, counters) in sortedTCP {
                out += "\(name){direction=\"\(Self.escape(direction))\"} \(pick(counters))\n"
            }
        }
        header("eino_proxy_errors_total", "counter", "Responses and resets made by the proxy itself, by cause.")
        for (key, value) in proxyErrors.sorted(by: { $0.key < $1.key }) {
            out += "eino_proxy_errors_total{direction=\"\(Self.escape(key.direction))\",cause=\"\(Self.escape(key.cause))\"} \(value)\n"
        }
        header("eino_policy_decisions_total", "counter", "Inbound TrafficTarget authorization decisions, by protocol (HTTP request or opaque TCP connection).")
        for (slot, count) in policyDecisions.counts.enumerated() where count > 0 {
            let (http, allowed) = PolicyDecisions.labels(of: slot)
            out += "eino_policy_decisions_total{direction=\"inbound\",protocol=\"\(http ? "http" : "tcp")\",decision=\"\(allowed ? "allow" : "deny")\"} \(count)\n"
        }
        header("eino_unmeshed_total", "counter", "Outbound HTTP requests and TCP connections passed through to destinations outside the mesh.")
        out += "eino_unmeshed_total{direction=\"outbound\",protocol=\"http\"} \(unmeshed.httpRequests)\n"
        out += "eino_unmeshed_total{direction=\"outbound\",protocol=\"tcp\"} \(unmeshed.tcpConnections)\n"
        for scalar in scalars {
            header(scalar.name, scalar.kind.rawValue, scalar.help)
            out += "\(scalar.name) \(Self.number(scalar.value))\n"
        }
        return out
    }

    static func labels(_ key: RouteKey) -> String {
        "direction=\"\(escape(key.direction))\",service=\"\(escape(key.service))\",backend=\"\(escape(key.backend))\",tls=\"\(key.tls)\""
    }

    static func escape(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
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

    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

/// Counts of inbound authorization decisions: four fixed series, so counting is an array
/// increment and builds no key.
public struct PolicyDecisions: Sendable, Equatable {
    public var counts = [UInt64](repeating: 0, count: 4)

    public init() {}

    @inlinable
    public static func slot(http: Bool, allowed: Bool) -> Int { (http ? 0 : 2) + (allowed ? 0 : 1) }

    static func labels(of slot: Int) -> (http: Bool, allowed: Bool) { (slot < 2, slot % 2 == 0) }
}

/// Outbound traffic to destinations outside the mesh (transparently redirected, no service
/// by authority or address): passed through unchanged, and counted so it can be seen.
public struct Unmeshed: Sendable, Equatable {
    public var httpRequests: UInt64 = 0
    public var tcpConnections: UInt64 = 0

    public init(httpRequests: UInt64 = 0, tcpConnections: UInt64 = 0) {
        self.httpRequests = httpRequests
        self.tcpConnections = tcpConnections
    }
}
