import Identity
import MeshConfig
import NIOCore
import NIOSSL
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Telemetry

/// Everything one event loop owns: its copy of the current snapshot, its connection pools,
/// load-balancer state and metrics. Only code running on `eventLoop` touches it, so none of
/// it needs a lock; that is what makes it safe to mark `@unchecked Sendable`.
final class LoopContext: @unchecked Sendable {
    let eventLoop: EventLoop
    let configuration: ProxyConfiguration
    let metrics = LoopMetrics()
    /// The inbound route's metrics handles, for the identity's name they were made for.
    private var inboundRoutes: (name: String, plain: RouteMetrics?, mesh: RouteMetrics?) = ("", nil, nil)
    let mirrorMetrics = LoopMirrorMetrics()
    /// Mirror copies running from this loop; they hold themselves here until done.
    var shadows: [ObjectIdentifier: ShadowExchange] = [:]
    /// This loop's share of `--mirror-max-inflight`.
    let mirrorInflightLimit: Int
    /// Mirror counter handles by root service, for this snapshot.
    private var mirrorCounters: [ServiceKey: [MirrorCounters]] = [:]
    var random = FastRandom()
    /// Trace sampling and the span and access-log buffers of this loop.
    let telemetry: LoopTelemetry
    private(set) var snapshot: MeshSnapshot?
    /// This proxy's mTLS values; nil without credentials (endpoints are then spoken to in
    /// plaintext and TLS arriving inbound is relayed to the app). Swapped like snapshots.
    var tls: MeshTLSRuntime?
    /// Endpoint state by address, kept across snapshots so pools and latency survive reloads.
    private var endpoints: [String: EndpointState] = [:]
    private var runtimes: [ServiceKey: ServiceRuntime] = [:]
    private var authorities = AuthorityCache()
    let app: EndpointState
    /// The app on other ports it was called on (transparent inbound), by port.
    private var appPorts: [Int: EndpointState] = [:]
    /// The proxy's own listening ports: traffic for the app is never sent to them (a peer
    /// must not reach the admin listener's `POST /shutdown` through the inbound proxy).
    var ownPorts: Set<Int>
    /// Set when shutting down: pooled connections are not kept.
    var draining = false
    /// Downstream connections open on this loop, so a drain that runs out of time can
    /// close them itself before the loops stop.
    private var downstream: [ObjectIdentifier: Channel] = [:]

    func track(_ channel: Channel) {
        let id = ObjectIdentifier(channel)
        downstream[id] = channel
        channel.closeFuture.assumeIsolated().whenComplete { [weak self] _ in self?.downstream[id] = nil }
    }

    /// Closes every downstream connection still open; completes when they are closed.
    func closeAllDownstream() -> EventLoopFuture<Void> {
        let closing = downstream.values.map { channel -> EventLoopFuture<Void> in
            channel.close(promise: nil)
            return channel.closeFuture
        }
        return EventLoopFuture.andAllComplete(closing, on: eventLoop)
    }
    private var sweeper: RepeatedTask?

    init(eventLoop: EventLoop, configuration: ProxyConfiguration) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        telemetry = LoopTelemetry(configuration: configuration)
        app = EndpointState(endpoint: Endpoint(host: configuration.app.host, port: configuration.app.port))
        ownPorts = Set([configuration.outbound.port, configuration.inbound.port, configuration.admin.port].filter { $0 != 0 })
        mirrorInflightLimit = configuration.mirrorMaxInflight == 0 ? 0 : max(1, configuration.mirrorMaxInflight / max(1, configuration.threads))
        let idle = configuration.upstreamIdleTimeout
        let interval = TimeAmount.nanoseconds(max(idle.nanoseconds / 4, 50_000_000))
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.closeIdle(olderThan: idle)
        }
    }

    func install(_ snapshot: MeshSnapshot) {
        eventLoop.preconditionInEventLoop()
        self.snapshot = snapshot
        runtimes.removeAll(keepingCapacity: true)
        authorities.removeAll()
        mirrorCounters.removeAll(keepingCapacity: true)
        // Forget endpoints that left, closing their idle connections.
        var live = Set<String>()
        for service in snapshot.services.values {
            for endpoint in service.endpoints { live.insert(endpoint.address) }
        }
        for (address, state) in endpoints where !live.contains(address) {
            state.closeIdle()
            endpoints[address] = nil
        }
    }

    /// The inbound route's metrics handle. Every HTTP/2 stream has a handler of its own, so
    /// the handle is kept here, not per handler, sparing each request the string-keyed lookup.
    func inboundRouteMetrics(tls: Bool) -> RouteMetrics {
        let name = snapshot?.identity.name ?? "app"
        if name != inboundRoutes.name { inboundRoutes = (name, nil, nil) }
        if let kept = tls ? inboundRoutes.mesh : inboundRoutes.plain { return kept }
        let handle = metrics.route(direction: TrafficDirection.inbound.rawValue, service: name, backend: name, tls: tls)
        if tls { inboundRoutes.mesh = handle } else { inboundRoutes.plain = handle }
        return handle
    }

    /// TrafficTarget authorization of an inbound request from `source` (nil: no verified
    /// identity), counted when a policy is in force. Without one, everyone is admitted.
    func admitsRequest(from source: ServiceKey?, _ head: HTTPRequestHead) -> Bool {
        guard let policy = snapshot?.accessPolicy else { return true }
        let admitted = policy.admitsRequest(
            from: source, port: app.endpoint.port, method: head.method.rawValue, path: requestPath(of: head.uri),
            header: { head.headers.first(name: $0) })
        metrics.policyDecision(http: true, allowed: admitted)
        return admitted
    }

    /// TrafficTarget authorization of an inbound opaque TCP connection; a refusal is also
    /// counted as the proxy error `forbidden`.
    func admitsConnection(from source: ServiceKey?) -> Bool {
        guard let policy = snapshot?.accessPolicy else { return true }
        let admitted = policy.admitsConnection(from: source, port: app.endpoint.port)
        metrics.policyDecision(http: false, allowed: admitted)
        if !admitted { metrics.proxyError(direction: TrafficDirection.inbound.rawValue, cause: ProxyError.forbidden.metricCause) }
        return admitted
    }

    func service(forAuthority authority: String) -> MeshService? {
        authorities.service(forAuthority: authority, in: snapshot)
    }

    func runtime(for key: ServiceKey) -> ServiceRuntime? {
        if let runtime = runtimes[key] { return runtime }
        guard let service = snapshot?.services[key] else { return nil }
        let states = service.endpoints.map { endpoint -> EndpointState in
            if let state = endpoints[endpoint.address], state.endpoint.identity == endpoint.identity { return state }
            let state = EndpointState(endpoint: endpoint)
            endpoints[endpoint.address] = state
            return state
        }
        let runtime = ServiceRuntime(service: service, endpoints: states)
        runtimes[key] = runtime
        return runtime
    }

    /// The mirror counters of a root service's mirror targets, in target order.
    func mirrorCounters(for service: MeshService, _ mirror: CompiledMirror) -> [MirrorCounters] {
        if let cached = mirrorCounters[service.key] { return cached }
        let handles = mirror.targets.map { mirrorMetrics.counters(namespace: service.key.namespace, service: service.key.name, mirror: $0.service.name) }
        mirrorCounters[service.key] = handles
        return handles
    }

    /// Picks an endpoint of a service: power of two choices on peak-EWMA cost.
    func pickEndpoint(_ runtime: ServiceRuntime) -> EndpointState? {
        let candidates = runtime.endpoints
        if candidates.isEmpty { return nil }
        let index = PowerOfTwoChoices.pick(count: candidates.count, random: random.next()) { candidates[$0].latency.cost }
        return candidates[index]
    }

    /// The app on `port` of its host (the port a redirected connection was going to, or the
    /// one a peer proxy says it was); nil for the proxy's own ports.
    func app(port: Int) -> EndpointState? {
        if port == app.endpoint.port { return app }
        guard !ownPorts.contains(port), (1...65535).contains(port) else { return nil }
        if let state = appPorts[port] { return state }
        let state = EndpointState(endpoint: Endpoint(host: app.endpoint.host, port: port))
        appPorts[port] = state
        return state
    }

    /// Destinations outside the mesh that redirected HTTP passes through to, each with its
    /// own pool; when there are too many they are all forgotten (their idle connections
    /// closed) and made again as needed.
    private var passthroughEndpoints: [SocketAddress: EndpointState] = [:]

    /// The endpoint for a redirected request whose destination is outside the mesh.
    func passthroughEndpoint(_ address: SocketAddress) -> EndpointState? {
        if let state = passthroughEndpoints[address] { return state }
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        if passthroughEndpoints.count >= 1024 {
            for state in passthroughEndpoints.values { state.closeIdle() }
            passthroughEndpoints.removeAll(keepingCapacity: true)
        }
        let state = EndpointState(endpoint: Endpoint(host: ip, port: port))
        passthroughEndpoints[address] = state
        return state
    }

    func closeIdle(olderThan age: TimeAmount) {
        let now = NIODeadline.now()
        for state in endpoints.values { state.closeIdle(olderThan: age, now: now) }
        for state in passthroughEndpoints.values { state.closeIdle(olderThan: age, now: now) }
        for state in appPorts.values { state.closeIdle(olderThan: age, now: now) }
        app.closeIdle(olderThan: age, now: now)
    }

    func closeAllIdle() {
        for state in endpoints.values { state.closeIdle() }
        for state in passthroughEndpoints.values { state.closeIdle() }
        for state in appPorts.values { state.closeIdle() }
        app.closeIdle()
    }

    func stop() {
        sweeper?.cancel()
        sweeper = nil
        closeAllIdle()
    }

    // MARK: upstream connections

    enum Lease {
        case ready(UpstreamConnection)
        case pending(EventLoopFuture<UpstreamConnection>.Isolated)
        case overloaded
    }

    /// A stream on the endpoint's shared HTTP/2 connection (made when there is none).
    ///
    /// `mesh`: the endpoint is another Eino proxy reached over mTLS (ALPN h2); its identity
    /// is checked during the handshake.
    func leaseStream(_ state: EndpointState, mesh: MeshTLSClient? = nil) -> Lease {
        let connection: EventLoopFuture<HTTP2Upstream>.Isolated
        if let existing = state.http2, existing.channel.isActive, !existing.peerSentGoAway {
            connection = eventLoop.makeSucceededIsolatedFuture(existing)
        } else if let pending = state.http2Pending {
            connection = pending
        } else {
            let made = connectHTTP2(state, tls: mesh)
            state.http2Pending = made
            made.whenComplete { [weak state] result in
                state?.http2Pending = nil
                if case .success(let upstream) = result, !upstream.peerSentGoAway { state?.http2 = upstream }
            }
            connection = made
        }
        let promise = eventLoop.makePromise(of: UpstreamConnection.self)
        connection.whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let upstream):
                upstream.multiplexer.createStreamChannel { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                        try stream.pipeline.syncOperations.addHandler(UpstreamHandler())
                    }
                }.assumeIsolated().whenComplete { created in
                    switch created {
                    case .failure(let error):
                        promise.fail(error)
                    case .success(let channel):
                        upstream.streamOpened()
                        channel.closeFuture.assumeIsolated().whenComplete { _ in upstream.streamClosed() }
                        let handler = try! channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                        let connection = UpstreamConnection(channel: channel, handler: handler, state: state, isStream: true)
                        handler.connection = connection
                        promise.assumeIsolated().succeed(connection)
                    }
                }
            }
        }
        let stream = promise.futureResult.assumeIsolated()
        return .pending(stream)
    }

    /// The TLS handlers for a connection to a mesh endpoint, and a future that completes
    /// when its handshake is done (failing with the reason, e.g. an identity mismatch).
    func addMeshTLS(to channel: Channel, client: MeshTLSClient, expecting expected: SPIFFEID?) throws -> EventLoopFuture<Void> {
        let failure = VerificationFailureBox()
        let handler = try client.makeHandler(expecting: expected, connectionFailure: { failure.record($0) })
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake, failure: failure))
        return handshake.futureResult
    }

    private func connectHTTP2(_ state: EndpointState, tls: MeshTLSClient?) -> EventLoopFuture<HTTP2Upstream>.Isolated {
        let handshakes = HandshakeSlot()
        let expected = state.expectedIdentity
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(configuration.connectTimeout)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { handshakes.future = try self.addMeshTLS(to: channel, client: tls, expecting: expected) }
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: tls == nil ? .init() : .mesh, streamConfiguration: .init()
                    ) { stream in stream.close() }
                    try channel.pipeline.syncOperations.addHandler(MultiplexerHolder(multiplexer))
                    try channel.pipeline.syncOperations.addHandler(GoAwayWatcher())
                }
            }
        let connected = state.socketAddress.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: state.endpoint.host, port: state.endpoint.port)
        return handshakes.verified(connected).assumeIsolated().map { channel in
            let holder = try! channel.pipeline.syncOperations.handler(type: MultiplexerHolder.self)
            let upstream = HTTP2Upstream(channel: channel, multiplexer: holder.multiplexer)
            channel.closeFuture.assumeIsolated().whenComplete { [weak state, weak upstream] _ in
                if let state, state.http2 === upstream { state.http2 = nil }
            }
            // A peer that sent GOAWAY takes no new streams (a draining proxy, say): the streams
            // open on it finish, the next request opens a new connection.
            let watcher = try! channel.pipeline.syncOperations.handler(type: GoAwayWatcher.self)
            watcher.onGoAway = { [weak state, weak upstream] in
                guard let upstream, !upstream.peerSentGoAway else { return }
                upstream.peerSentGoAway = true
                if let state, state.http2 === upstream { state.http2 = nil }
                upstream.closeWhenIdle()
                proxyLog("peer \(state?.endpoint.address ?? "?") sent GOAWAY; new requests to it go on a new connection")
            }
            if watcher.received { watcher.onGoAway?() }
            return upstream
        }
    }

    /// An idle pooled connection to `state`, or a new one.
    func lease(_ state: EndpointState) -> Lease {
        while let connection = state.idle.popLast() {
            if connection.channel.isActive {
                connection.cancelIdle()
                return .ready(connection)
            }
        }
        guard state.open < configuration.maxConnectionsPerEndpoint else { return .overloaded }
        state.open += 1
        let future = connect(state).assumeIsolated().map { channel -> UpstreamConnection in
            let handler = try! channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
            let connection = UpstreamConnection(channel: channel, handler: handler, state: state, isStream: false)
            handler.connection = connection
            channel.closeFuture.assumeIsolated().whenComplete { [weak state, weak connection] _ in
                state?.open -= 1
                if let connection { state?.forget(connection) }
            }
            return connection
        }
        future.whenFailure { [weak state] _ in state?.open -= 1 }
        return .pending(future)
    }

    private func connect(_ state: EndpointState) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .connectTimeout(configuration.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Encoder and decoder only: headers were sanitised already, and an upgrade
                    // later takes both out, leaving the decoder's read-ahead to the relay.
                    try channel.pipeline.syncOperations.addHandlers([
                        HTTPRequestEncoder(),
                        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)),
                        UpstreamHandler(),
                    ])
                }
            }
        if let address = state.socketAddress {
            return bootstrap.connect(to: address)
        }
        return bootstrap.connect(host: state.endpoint.host, port: state.endpoint.port)
    }

    /// Returns a finished connection to its pool (or closes it).
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.handler.owner = nil
        if connection.isStream {
            // A finished stream is closed already; an unfinished one is reset.
            if !reusable { connection.channel.close(promise: nil) }
            return
        }
        guard reusable, !draining, connection.channel.isActive else {
            connection.channel.close(promise: nil)
            return
        }
        connection.idleSince = .now()
        connection.state.idle.append(connection)
        // Reading while idle lets a close by the server be noticed at once.
        connection.channel.read()
    }
}

/// One endpoint as seen by one loop.
final class EndpointState {
    let endpoint: Endpoint
    let socketAddress: SocketAddress?
    var latency = PeakEWMA()
    var idle: [UpstreamConnection] = []
    var open = 0
    /// The shared HTTP/2 connection, for exchanges that arrived over HTTP/2.
    var http2: HTTP2Upstream?
    var http2Pending: EventLoopFuture<HTTP2Upstream>.Isolated?

    /// The SPIFFE ID the endpoint must present; nil for a plaintext endpoint.
    let expectedIdentity: SPIFFEID?

    init(endpoint: Endpoint) {
        self.endpoint = endpoint
        expectedIdentity = endpoint.identity.flatMap { try? SPIFFEID(parsing: $0) }
        socketAddress = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
    }

    func forget(_ connection: UpstreamConnection) {
        if let index = idle.firstIndex(where: { $0 === connection }) { idle.remove(at: index) }
    }

    func closeIdle() {
        let closing = idle
        idle.removeAll()
        for connection in closing { connection.channel.close(promise: nil) }
        if let http2 {
            // Streams still open finish first; no new ones start on it.
            self.http2 = nil
            http2.closeWhenIdle()
        }
    }

    func closeIdle(olderThan age: TimeAmount, now: NIODeadline) {
        if let http2, let since = http2.idleSince, now - since >= age {
            self.http2 = nil
            http2.closeWhenIdle()
        }
        guard !idle.isEmpty else { return }
        var kept: [UpstreamConnection] = []
        for connection in idle {
            if let since = connection.idleSince, now - since >= age {
                connection.channel.close(promise: nil)
            } else {
                kept.append(connection)
            }
        }
        idle = kept
    }
}

/// A service's endpoints as seen by one loop, for one snapshot.
final class ServiceRuntime {
    let service: MeshService
    let endpoints: [EndpointState]
    /// Outbound route metric handles for this backend, by root service name, on this loop:
    /// for plaintext exchanges and for those over mTLS.
    var outboundMetrics: [String: RouteMetrics] = [:]
    var outboundMeshMetrics: [String: RouteMetrics] = [:]

    init(service: MeshService, endpoints: [EndpointState]) {
        self.service = service
        self.endpoints = endpoints
    }
}

/// A pooled HTTP/1.1 connection to an upstream endpoint.
final class UpstreamConnection {
    let channel: Channel
    let handler: UpstreamHandler
    let state: EndpointState
    var idleSince: NIODeadline?
    /// Requests carried so far; a reused connection may retry a bodiless request once.
    var requests = 0
    /// An HTTP/2 stream: used once, never pooled.
    let isStream: Bool

    init(channel: Channel, handler: UpstreamHandler, state: EndpointState, isStream: Bool) {
        self.channel = channel
        self.handler = handler
        self.state = state
        self.isStream = isStream
    }

    func cancelIdle() {
        idleSince = nil
    }
}

/// What an upstream connection reports to the exchange that owns it.
protocol UpstreamOwner: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ writable: Bool)
    func upstreamClosed(_ error: Error?)
    /// Whether the downstream can take more bytes; the upstream is not read while it cannot.
    var downstreamWritable: Bool { get }
}

/// The last handler of an upstream connection: hands response parts to the owning exchange
/// and holds reads while the downstream cannot keep up.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var owner: UpstreamOwner?
    weak var connection: UpstreamConnection?
    private var pendingRead = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let owner {
            owner.upstreamReceived(part)
        } else {
            // Bytes on an idle connection: the server is confused; do not reuse it.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func read(context: ChannelHandlerContext) {
        if let owner, !owner.downstreamWritable {
            pendingRead = true
            return
        }
        context.read()
    }

    /// The downstream drained: resume reading if a read was held.
    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let owner = self.owner
        self.owner = nil
        owner?.upstreamClosed(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let owner = self.owner
        self.owner = nil
        owner?.upstreamClosed(error)
        context.close(promise: nil)
    }
}

/// An HTTP/2 connection to an endpoint, shared by every exchange on one loop that goes there.
final class HTTP2Upstream {
    let channel: Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private(set) var openStreams = 0
    /// The peer sent GOAWAY: no new stream may start here.
    var peerSentGoAway = false
    /// When the last stream closed; nil while streams are open.
    private(set) var idleSince: NIODeadline? = .now()
    private var closing = false

    init(channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    func streamOpened() {
        openStreams += 1
        idleSince = nil
    }

    func streamClosed() {
        openStreams -= 1
        if openStreams == 0 {
            idleSince = .now()
            if closing { channel.close(promise: nil) }
        }
    }

    /// Closes now if no stream is open, else once the last one closes.
    func closeWhenIdle() {
        closing = true
        if openStreams == 0 { channel.close(promise: nil) }
    }
}

/// Keeps the stream multiplexer where the connect callback can find it.
final class MultiplexerHolder: ChannelInboundHandler {
    typealias InboundIn = Any
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    init(_ multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.multiplexer = multiplexer
    }
}

/// Notices a GOAWAY from the peer (connection-level frames come out of the HTTP/2 handler).
final class GoAwayWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    private(set) var received = false
    var onGoAway: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload {
            received = true
            onGoAway?()
        }
        context.fireChannelRead(data)
    }
}

/// Passes the handshake future of a connection out of its channel initializer (both run on
/// the same event loop, one after the other).
final class HandshakeSlot: @unchecked Sendable {
    var future: EventLoopFuture<Void>?

    /// `connected`, completed only once the handshake in this slot (if any) succeeded: a
    /// failed one closes the connection and fails with its reason.
    func verified(_ connected: EventLoopFuture<Channel>) -> EventLoopFuture<Channel> {
        connected.flatMap { channel in
            guard let handshake = self.future else { return channel.eventLoop.makeSucceededFuture(channel) }
            return handshake.map { channel }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
    }
}
