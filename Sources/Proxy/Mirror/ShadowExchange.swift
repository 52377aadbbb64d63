import Foundation
import MeshConfig
import NIOCore
import NIOHTTP1
import Telemetry

/// The copy of one request being collected for its mirrors: the head as it went upstream
/// and the body up to the mirror's cap. Sent when the request is complete.
final class MirrorCopy {
    private let mirror: CompiledMirror
    private let targets: [(target: MirrorTarget, counters: MirrorCounters)]
    private let head: HTTPRequestHead
    private var body: [ByteBuffer] = []
    private var bodyBytes = 0
    let comparison: ComparisonSession?

    init(mirror: CompiledMirror, targets: [(target: MirrorTarget, counters: MirrorCounters)], head: HTTPRequestHead) {
        self.mirror = mirror
        self.targets = targets
        self.head = head
        comparison = mirror.compare.map { ComparisonSession(rules: $0, method: head.method.rawValue, path: String(requestPath(of: head.uri))) }
    }

    /// Adds a piece of the body; false when the body outgrew the cap (the copy is dropped).
    func append(_ buffer: ByteBuffer) -> Bool {
        bodyBytes += buffer.readableBytes
        guard bodyBytes <= mirror.maxBodyBytes else {
            drop(reason: "body_too_large")
            return false
        }
        body.append(buffer)
        return true
    }

    func drop(reason: String) {
        for (_, counters) in targets { counters.stats.dropped[reason, default: 0] &+= 1 }
        comparison?.abandon()
    }

    /// The request is complete: one shadow exchange per target, each within the in-flight
    /// cap, spoken to as its service declares (``UpstreamProtocol``). Returns the counters
    /// of the copies that went out.
    func send(on loop: LoopContext) -> [MirrorCounters] {
        var sent: [MirrorCounters] = []
        var shadowHead = head
        shadowHead.headers.replaceOrAdd(name: "host", value: Self.shadowAuthority(head.headers.first(name: "host") ?? ""))
        shadowHead.headers.replaceOrAdd(name: "eino-mirror", value: "1")
        // The whole body is here: plain length framing suits both HTTP/1.1 and HTTP/2.
        shadowHead.headers.remove(name: "transfer-encoding")
        if bodyBytes > 0 || head.headers.contains(name: "content-length") {
            shadowHead.headers.replaceOrAdd(name: "content-length", value: String(bodyBytes))
        }
        for (target, counters) in targets {
            guard loop.shadows.count < loop.mirrorInflightLimit else {
                counters.stats.dropped["inflight", default: 0] &+= 1
                continue
            }
            guard let runtime = loop.runtime(for: target.service), let endpoint = loop.pickEndpoint(runtime) else {
                counters.stats.dropped["no_endpoints", default: 0] &+= 1
                continue
            }
            let http2 = UpstreamProtocol.speaksHTTP2(runtime.service.appProtocol, shadowHead.headers)
            let exchange = ShadowExchange(loop: loop, counters: counters, endpoint: endpoint, head: shadowHead, body: body, http2: http2, comparison: comparison)
            exchange.start()
            sent.append(counters)
        }
        return sent
    }

    /// `web:8080` → `web-shadow:8080`, as Envoy names shadow hosts.
    static func shadowAuthority(_ authority: String) -> String {
        if !authority.hasPrefix("["), let colon = authority.lastIndex(of: ":") {
            return authority[..<colon] + "-shadow" + authority[colon...]
        }
        if authority.hasPrefix("["), let close = authority.lastIndex(of: "]") {
            let after = authority.index(after: close)
            return authority[..<after] + "-shadow" + authority[after...]
        }
        return authority + "-shadow"
    }
}

/// Pairs a primary response with the shadows' responses; compares each pair once both ends
/// are complete. The primary response is never held for it.
final class ComparisonSession {
    let rules: MirrorComparison
    let method: String
    let path: String
    private var primary: CapturedResponse?
    private var primaryFinished = false
    private var abandoned = false
    /// Shadows that finished before the primary did.
    private var waiting: [(CapturedResponse, MirrorCounters)] = []

    init(rules: MirrorComparison, method: String, path: String) {
        self.rules = rules
        self.method = method
        self.path = path
    }

    /// The primary answered no response of its own (the proxy answered, or the connection
    /// was cut): nothing to compare with.
    func abandon() {
        abandoned = true
        waiting.removeAll()
    }

    // The primary's side, fed by the exchange handler.
    func primaryHead(_ head: HTTPResponseHead) {
        primary = CapturedResponse(status: Int(head.status.code), headers: Self.lowercased(head.headers))
    }

    func primaryBody(_ buffer: ByteBuffer) {
        primary?.append(buffer.readableBytesView, cap: rules.maxBodyBytes)
    }

    func primaryEnd() {
        guard !abandoned, primary != nil else { return }
        primaryFinished = true
        for (shadow, counters) in waiting { compare(shadow, counters) }
        waiting.removeAll()
    }

    func shadowFinished(_ shadow: CapturedResponse?, counters: MirrorCounters) {
        guard !abandoned, let shadow else { return }
        if primaryFinished { compare(shadow, counters) } else { waiting.append((shadow, counters)) }
    }

    private func compare(_ shadow: CapturedResponse, _ counters: MirrorCounters) {
        guard let primary else { return }
        let difference = ResponseComparator.compare(primary: primary, shadow: shadow, rules: rules)
        counters.stats.compared &+= 1
        guard difference.any else { return }
        counters.stats.mismatched &+= 1
        if difference.status { counters.stats.statusMismatches &+= 1 }
        if difference.headers { counters.stats.headerMismatches &+= 1 }
        if difference.body { counters.stats.bodyMismatches &+= 1 }
        counters.addSample(MirrorSample(
            method: method, path: path, primaryStatus: primary.status, shadowStatus: shadow.status,
            difference: difference.first ?? "", time: Date().timeIntervalSince1970))
    }

    static func lowercased(_ headers: HTTPHeaders) -> [(name: String, value: String)] {
        headers.map { (name: $0.name.lowercased(), value: $0.value) }
    }
}

/// One copy on its way to a mirror endpoint: sends the buffered request, reads the response
/// (keeping at most the comparison cap of its body) and lets it go. Nobody downstream waits
/// on it; the loop holds it while it runs.
final class ShadowExchange: UpstreamOwner {
    private let loop: LoopContext
    private let counters: MirrorCounters
    private let endpoint: EndpointState
    private let head: HTTPRequestHead
    private let body: [ByteBuffer]
    private let http2: Bool
    private let comparison: ComparisonSession?
    private var upstream: UpstreamConnection?
    private var response: CapturedResponse?
    private var startedAt = NIODeadline.now()
    private var timeout: Scheduled<Void>?
    private var finished = false

    init(loop: LoopContext, counters: MirrorCounters, endpoint: EndpointState, head: HTTPRequestHead, body: [ByteBuffer], http2: Bool, comparison: ComparisonSession?) {
        self.loop = loop
        self.counters = counters
        self.endpoint = endpoint
        self.head = head
        self.body = body
        self.http2 = http2
        self.comparison = comparison
    }

    func start() {
        startedAt = .now()
        loop.shadows[ObjectIdentifier(self)] = self
        loop.mirrorMetrics.inflight = loop.shadows.count
        timeout = loop.eventLoop.assumeIsolated().scheduleTask(in: loop.configuration.mirrorTimeout) { [weak self] in self?.finish(failed: true) }
        // As for the primary: a mesh endpoint is another proxy, reached by a stream on the
        // shared mTLS connection; otherwise the shadow service's own protocol.
        let mesh = endpoint.expectedIdentity != nil ? loop.tls?.httpClient : nil
        let lease = mesh != nil || http2 ? loop.leaseStream(endpoint, mesh: mesh) : loop.lease(endpoint)
        switch lease {
        case .ready(let connection):
            attach(connection)
        case .pending(let future):
            future.whenComplete { [weak self] result in
                switch result {
                case .success(let connection):
                    if let self, !self.finished { self.attach(connection) } else { self?.loop.release(connection, reusable: false) }
                case .failure:
                    self?.finish(failed: true)
                }
            }
        case .overloaded:
            finish(failed: true)
        }
    }

    private func attach(_ connection: UpstreamConnection) {
        upstream = connection
        connection.handler.owner = self
        connection.requests += 1
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        for buffer in body { connection.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil) }
        connection.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        counters.stats.sent &+= 1
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head):
            guard head.status.code >= 200 else { return }
            response = CapturedResponse(status: Int(head.status.code), headers: comparison == nil ? [] : ComparisonSession.lowercased(head.headers))
        case .body(let buffer):
            if let comparison { response?.append(buffer.readableBytesView, cap: comparison.rules.maxBodyBytes) }
        case .end:
            finish(failed: (response?.status ?? 500) >= 500, reusable: true)
        }
    }

    func upstreamReadComplete() {}
    func upstreamWritabilityChanged(_ writable: Bool) {}
    var downstreamWritable: Bool { true }

    func upstreamClosed(_ error: Error?) {
        upstream = nil
        finish(failed: true)
    }

    private func finish(failed: Bool, reusable: Bool = false) {
        guard !finished else { return }
        finished = true
        timeout?.cancel()
        timeout = nil
        if let upstream {
            self.upstream = nil
            loop.release(upstream, reusable: reusable)
        }
        let elapsed = NIODeadline.now() - startedAt
        counters.stats.shadowLatency.record(nanoseconds: UInt64(max(0, elapsed.nanoseconds)))
        if failed { counters.stats.failed &+= 1 }
        // A shadow that got no answer has nothing to compare; a 5xx is compared (and failed).
        comparison?.shadowFinished(reusable ? response : nil, counters: counters)
        loop.shadows[ObjectIdentifier(self)] = nil
        loop.mirrorMetrics.inflight = loop.shadows.count
    }
}
