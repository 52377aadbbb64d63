import Identity
import MeshConfig
import NIOCore
import NIOHTTP1
import Telemetry

/// Which listener a connection came in on.
enum TrafficDirection: String, Sendable {
    case outbound
    case inbound
}

/// A verified peer proxy's identity in the forms each exchange needs, made once per
/// connection rather than once per HTTP/2 stream.
struct MeshPeer {
    /// The SPIFFE ID, as `eino-client-id` carries it.
    let id: String
    /// Its ServiceAccount, as TrafficTarget sources name it.
    let source: ServiceKey

    init(_ identity: SPIFFEID) {
        id = identity.description
        source = ServiceKey(name: identity.serviceAccount, namespace: identity.namespace)
    }
}

/// Proxies HTTP exchanges from one downstream HTTP/1.1 connection (or one HTTP/2 stream)
/// to upstream HTTP/1.1 connections or HTTP/2 streams, as the upstream speaks, streaming
/// both bodies with backpressure. Runs entirely on the connection's event loop; the
/// upstream connections live on the same loop.
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let loop: LoopContext
    private let direction: TrafficDirection
    private let isHTTP2: Bool
    private var machine = HTTPExchangeStateMachine()
    private var context: ChannelHandlerContext?

    private var upstream: UpstreamConnection?
    private var endpoint: EndpointState?
    /// Request parts received before the upstream connection is ready.
    private var buffered: CircularBuffer<HTTPClientRequestPart> = CircularBuffer(initialCapacity: 4)
    /// An HTTP/2 request's head for an HTTP/1.1 upstream, until the part after it says how
    /// to frame it (``DowngradeFraming``).
    private var heldHead: HTTPRequestHead?
    private var wroteUpstream = false
    private var pendingRead = false
    private var keepAlive = true
    private var requestVersion: HTTPVersion = .http1_1
    private var requestBodyless = true
    private var start: NIODeadline = .now()
    private var routeMetrics: RouteMetrics?
    private var status = 0
    /// When the response head went downstream (time to it is the response latency).
    private var responseHeadAt: NIODeadline?
    private var timeout: Scheduled<Void>?
    private var upstreamHead: HTTPRequestHead?
    private var retried = false
    /// An HTTP/1.1 `Upgrade` (WebSocket …) was asked for and forwarded.
    private var upgradeRequested = false
    /// The upstream agreed (101): both connections become an opaque relay after its end.
    private var switching = false

    /// The HTTP/1 connection's slow-head guard, told when a head arrives and when an
    /// exchange completes.
    private let headerTimeout: HeaderTimeoutHandler?
    /// Where a transparently redirected connection was going, if it was.
    private let original: SocketAddress?
    /// The app's port a redirected connection was going to, written once for `eino-dst-port`.
    private let originalPort: String?
    /// Carries the app's port from the outbound proxy to the inbound one (docs/proxy.md).
    static let destinationPortHeader = "eino-dst-port"
    /// Inbound over mTLS from a peer proxy: the verified client (for `eino-client-id` and
    /// TrafficTarget checks).
    private let meshPeer: MeshPeer?
    private let fromMesh: Bool
    /// The current exchange goes upstream as an HTTP/2 stream.
    private var upstreamStream = false
    /// The mTLS client for the current exchange's upstream (a mesh endpoint), if any.
    private var meshUpstream: MeshTLSClient?

    /// The copy of the current request for its mirrors, while the request is read.
    private var mirrorCopy: MirrorCopy?
    /// Compares the current primary response with its shadows', while it is streamed.
    private var comparison: ComparisonSession?
    /// Counters of the copies sent for the current exchange, for the primary's latency.
    private var mirrored: [MirrorCounters] = []
    /// Trace context and access log for the current exchange.
    private var telemetry = ExchangeTelemetry()

    init(loop: LoopContext, direction: TrafficDirection, isHTTP2: Bool, original: SocketAddress? = nil, fromMesh: Bool = false, meshPeer: MeshPeer? = nil,
         headerTimeout: HeaderTimeoutHandler? = nil) {
        self.loop = loop
        self.headerTimeout = headerTimeout
        self.direction = direction
        self.isHTTP2 = isHTTP2
        self.original = original
        originalPort = ProxyServer.appPort(of: original, loop: loop).map(String.init)
        self.fromMesh = fromMesh
        self.meshPeer = meshPeer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: downstream → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            switch machine.requestHead() {
            case .protocolError:
                context.close(promise: nil)
            case .route:
                headerTimeout?.headReceived()
                begin(head, context: context)
            }
        case .body(let buffer):
            requestBodyless = false
            telemetry.requestBytes += buffer.readableBytes
            if let mirrorCopy, !mirrorCopy.append(buffer) {
                self.mirrorCopy = nil
                comparison = nil
            }
            let action = machine.requestBody()
            releaseHeldHead(contentFollows: true, action)
            pass(.body(.byteBuffer(buffer)), action)
        case .end(let trailers):
            // Malformed trailers from a peer proxy (ReceivedFields): the stream is reset.
            if fromMesh, let trailers, !ReceivedFields.areValid(trailers) {
                context.close(promise: nil)
                return
            }
            let (action, complete) = machine.requestEnd()
            releaseHeldHead(contentFollows: trailers != nil, action)
            pass(.end(trailers), action)
            if action == .forward { flushUpstream() }
            if let mirrorCopy {
                self.mirrorCopy = nil
                mirrored = mirrorCopy.send(on: loop)
            }
            if complete { finishExchange() }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushUpstream()
        context.fireChannelReadComplete()
    }

    /// A request part, as the state machine says: held until the upstream is there, written
    /// to it, or dropped.
    private func pass(_ part: HTTPClientRequestPart, _ action: HTTPExchangeStateMachine.PartAction) {
        switch action {
        case .buffer: buffered.append(part)
        case .forward: writeUpstream(part)
        case .discard: break
        }
    }

    /// Frames the held head (``DowngradeFraming``) and sends it ahead of the part after it.
    private func releaseHeldHead(contentFollows: Bool, _ action: HTTPExchangeStateMachine.PartAction) {
        guard var head = heldHead else { return }
        heldHead = nil
        DowngradeFraming.frame(&head, contentFollows: contentFollows)
        upstreamHead = head
        pass(.head(head), action)
    }

    private func writeUpstream(_ part: HTTPClientRequestPart) {
        guard let upstream else { return }
        upstream.channel.write(part, promise: nil)
        wroteUpstream = true
    }

    private func flushUpstream() {
        guard wroteUpstream else { return }
        wroteUpstream = false
        upstream?.channel.flush()
    }

    func read(context: ChannelHandlerContext) {
        // A body being dropped (answered locally, upstream gone) is read as fast as it comes.
        if machine.request == .streaming && !machine.answeredLocally && machine.upstream != .gone {
            // Hold the downstream while the upstream is not there yet or cannot take more.
            guard let upstream, machine.upstream == .connected, upstream.channel.isWritable else {
                pendingRead = true
                return
            }
        }
        context.read()
    }

    private func resumeDownstreamReads() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { resumeDownstreamReads() }
    }

    var downstreamWritable: Bool { context?.channel.isWritable ?? false }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.handler.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: routing

    private func begin(_ incoming: HTTPRequestHead, context: ChannelHandlerContext) {
        start = .now()
        status = 0
        responseHeadAt = nil
        retried = false
        requestBodyless = true
        requestVersion = incoming.version
        keepAlive = isHTTP2 || incoming.isKeepAlive
        // A peer proxy's fields, which no HTTP/2 validation checked (ReceivedFields).
        if fromMesh, !ReceivedFields.areValid(incoming.headers) {
            answer(.badRequest)
            return
        }
        if let requestTimeout = loop.configuration.requestTimeout, requestTimeout > .zero {
            timeout = context.eventLoop.assumeIsolated().scheduleTask(in: requestTimeout) { [weak self] in self?.timedOut() }
        }
        var head = incoming
        telemetry.begin(&head, direction: direction, loop: loop)
        let target: EndpointState
        // What the target speaks, when it is not a peer proxy (UpstreamProtocol).
        let declared: AppProtocol
        var mirrorRoot: MeshService?
        switch direction {
        case .inbound:
            // The app's port the caller meant: from the peer proxy over mTLS, else the one
            // a redirected connection was going to, else `--app`'s.
            let port = fromMesh ? head.headers.first(name: Self.destinationPortHeader).flatMap { Int($0) } : original?.port
            head.headers.remove(name: Self.destinationPortHeader)
            guard let app = port.map({ loop.app(port: $0) }) ?? loop.app else {
                answer(.forbidden)
                return
            }
            target = app
            declared = loop.configuration.appProtocol
            head.headers.remove(name: "eino-client-id")
            if let meshPeer { head.headers.add(name: "eino-client-id", value: meshPeer.id) }
            let routeMetrics = loop.inboundRouteMetrics(tls: fromMesh)
            self.routeMetrics = routeMetrics
            routeMetrics.requestStarted()
            // Once a TrafficTarget names this identity, only its sources get through, for its
            // rules (and a caller without a verified identity is none of them).
            if !loop.admitsRequest(from: meshPeer?.source, head) {
                answer(.forbidden)
                return
            }
        case .outbound:
            let authority = head.headers.first(name: "host") ?? ""
            // The authority names the service; for a redirected connection whose authority
            // names none (an IP address, say), the address it was going to does. Anything
            // else it was going to is outside the mesh: passed through as it is.
            guard let service = loop.service(forAuthority: authority) ?? original?.ipAddress.flatMap({ loop.snapshot?.service(forDestination: $0) }) else {
                routeMetrics = nil
                guard let original, let passthrough = loop.passthroughEndpoint(original) else {
                    answer(.unknownService(unknownName(authority)))
                    return
                }
                loop.metrics.unmeshed.httpRequests &+= 1
                target = passthrough
                // Nothing declares what it speaks: the client's choice is the best guess.
                declared = isHTTP2 ? .h2c : .http
                break
            }
            let choice = service.route(
                method: head.method.rawValue, path: requestPath(of: head.uri),
                header: { head.headers.first(name: $0) }, random: loop.random.next())
            guard case .service(let key) = choice, let runtime = loop.runtime(for: key), let picked = loop.pickEndpoint(runtime) else {
                count(on: loop.runtime(for: service.key).map { metricsHandle($0, service: service.key.name, backend: service.key.name, tls: false) })
                answer(.noEndpoints)
                return
            }
            count(on: metricsHandle(runtime, service: service.key.name, backend: key.name, tls: picked.expectedIdentity != nil && loop.tls != nil))
            target = picked
            declared = runtime.service.appProtocol
            mirrorRoot = service
        }

        // A mesh endpoint (one with an identity, when this proxy holds credentials) is
        // another proxy: every request travels to it as an HTTP/2 stream over mTLS, and it
        // speaks its own app's protocol. Anything else is spoken to in its declared protocol
        // (gRPC always in HTTP/2), whatever the client used.
        if direction == .outbound, target.expectedIdentity != nil, let tls = loop.tls {
            meshUpstream = tls.httpClient
            upstreamStream = true
            if let originalPort { head.headers.replaceOrAdd(name: Self.destinationPortHeader, value: originalPort) }
        } else {
            meshUpstream = nil
            upstreamStream = UpstreamProtocol.speaksHTTP2(declared, head.headers)
        }
        let upgrade = (isHTTP2 || upstreamStream) ? nil : Self.requestedUpgrade(head.headers)
        HopByHop.remove(from: &head.headers, keepChunked: !isHTTP2 && !upstreamStream)
        if let upgrade {
            upgradeRequested = true
            head.headers.replaceOrAdd(name: "upgrade", value: upgrade)
            head.headers.replaceOrAdd(name: "connection", value: "upgrade")
        }
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            // Answered here, so the client sends its body while the upstream connects.
            head.headers.remove(name: "expect")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: responseVersion, status: .continue))), promise: nil)
        }
        head.version = .http1_1
        upstreamHead = head
        if let mirrorRoot, let mirror = mirrorRoot.mirror {
            startMirror(mirror, root: mirrorRoot, head: head, unsupported: upgrade != nil || head.method == .CONNECT)
        }
        if isHTTP2 && !upstreamStream && DowngradeFraming.needsDecision(head) {
            heldHead = head
        } else {
            buffered.append(.head(head))
        }
        endpoint = target
        target.latency.outstanding += 1
        lease(target)
    }

    /// Samples the request for each of the root service's mirrors; the chosen ones are
    /// copied while the request streams upstream.
    private func startMirror(_ mirror: CompiledMirror, root: MeshService, head: HTTPRequestHead, unsupported: Bool) {
        guard mirror.applies(method: head.method.rawValue, path: requestPath(of: head.uri), header: { head.headers.first(name: $0) }) else { return }
        let counters = loop.mirrorCounters(for: root, mirror)
        var chosen: [(target: MirrorTarget, counters: MirrorCounters)] = []
        for (index, target) in mirror.targets.enumerated() where target.samples(random: loop.random.next()) {
            counters[index].stats.sampled &+= 1
            chosen.append((target, counters[index]))
        }
        guard !chosen.isEmpty else { return }
        let copy = MirrorCopy(mirror: mirror, targets: chosen, head: head)
        if unsupported {
            copy.drop(reason: "unsupported")
        } else if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }), length > mirror.maxBodyBytes {
            copy.drop(reason: "body_too_large")
        } else {
            mirrorCopy = copy
            comparison = copy.comparison
        }
    }

    /// The outbound metrics handle for (root service, backend, tls), cached on the backend's
    /// runtime by root service name so the hot path does one lookup and builds no string.
    private func metricsHandle(_ runtime: ServiceRuntime, service: String, backend: String, tls: Bool) -> RouteMetrics {
        if let handle = tls ? runtime.outboundMeshMetrics[service] : runtime.outboundMetrics[service] { return handle }
        let handle = loop.metrics.route(direction: direction.rawValue, service: service, backend: backend, tls: tls)
        if tls { runtime.outboundMeshMetrics[service] = handle } else { runtime.outboundMetrics[service] = handle }
        return handle
    }

    /// The exchange is counted under `handle` (nil: under no route); counts its request.
    private func count(on handle: RouteMetrics?) {
        routeMetrics = handle
        handle?.requestStarted()
    }

    private func lease(_ target: EndpointState) {
        machine.connecting()
        switch upstreamStream ? loop.leaseStream(target, mesh: meshUpstream) : loop.lease(target) {
        case .ready(let connection):
            attach(connection)
        case .pending(let future):
            future.whenComplete { [weak self] result in
                guard let self else {
                    if case .success(let connection) = result { connection.channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let connection): self.attach(connection)
                case .failure(let error):
                    self.upstreamFailed(connecting: true, tls: (error as? MeshUpstreamError)?.cause)
                }
            }
        case .overloaded:
            answer(.overloaded)
        }
    }

    private func attach(_ connection: UpstreamConnection) {
        switch machine.connected() {
        case .abandon:
            loop.release(connection, reusable: false)
        case .sendBuffered:
            upstream = connection
            connection.handler.owner = self
            connection.requests += 1
            while let part = buffered.popFirst() { writeUpstream(part) }
            flushUpstream()
            if connection.channel.isWritable { resumeDownstreamReads() }
        }
    }

    // MARK: upstream → downstream

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context else { return }
        switch part {
        case .head(var head):
            if head.status.code == 101 && upgradeRequested {
                // Switching protocols: pass the 101 on and relay bytes once its end is read.
                guard machine.responseHead() else { return }
                status = 101
                responseHeadAt = .now()
                switching = true
                var switched = head
                let upgrade = head.headers.first(name: "upgrade")
                HopByHop.remove(from: &switched.headers, keepChunked: false)
                if let upgrade { switched.headers.replaceOrAdd(name: "upgrade", value: upgrade) }
                switched.headers.replaceOrAdd(name: "connection", value: "upgrade")
                switched.version = responseVersion
                context.writeAndFlush(wrapOutboundOut(.head(switched)), promise: nil)
                return
            }
            // A peer proxy's fields (a mesh upstream is always an HTTP/2 stream), which no
            // HTTP/2 validation checked (ReceivedFields): a malformed response is a reset
            // stream, answered 502 once the stream is closed.
            if meshUpstream != nil, !ReceivedFields.areValid(head.headers) {
                upstream?.channel.close(promise: nil)
                return
            }
            if head.status.code < 200 { return }  // 1xx: answered or dropped already
            // A refused upgrade: the request decoder stopped at the upgrade, so close after.
            if upgradeRequested { keepAlive = false }
            guard machine.responseHead() else { return }
            status = Int(head.status.code)
            let now = NIODeadline.now()
            responseHeadAt = now
            if let endpoint {
                endpoint.latency.observe(rttNanos: UInt64(max(0, (now - start).nanoseconds)), now: UInt64(now.uptimeNanoseconds))
            }
            // An HTTP/2 stream is used once anyway; its response head (version 2) never says
            // keep-alive, and closing a finished stream early would send RST_STREAM, which a
            // server counts against its reset-flood limit.
            if !head.isKeepAlive && upstream?.isStream != true { spent = true }
            comparison?.primaryHead(head)
            HopByHop.remove(from: &head.headers, keepChunked: !isHTTP2)
            head.version = responseVersion
            if !isHTTP2 && !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            if machine.responseBody() {
                comparison?.primaryBody(buffer)
                telemetry.responseBytes += buffer.readableBytes
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
        case .end(let trailers):
            // Malformed trailers from a peer proxy (ReceivedFields): the response is cut.
            if meshUpstream != nil, let trailers, !ReceivedFields.areValid(trailers) {
                abort()
                return
            }
            if switching {
                // Leave the decoders' call stacks before taking them out of the pipelines.
                context.eventLoop.assumeIsolated().execute { self.switchToRelay() }
                return
            }
            let (write, complete) = machine.responseEnd()
            if let comparison {
                self.comparison = nil
                comparison.primaryEnd()
            }
            let closing = closePromiseIfNeeded(context, complete: complete)
            // Finish first: writing the end lets HTTP/1 pipelining hand over the next
            // request at once, and it must find this handler idle.
            if complete { finishExchange() }
            if write { context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: closing) }
        }
    }

    /// A promise that closes the downstream once the last byte is written, when the
    /// connection is not kept alive.
    private func closePromiseIfNeeded(_ context: ChannelHandlerContext, complete: Bool) -> EventLoopPromise<Void>? {
        guard complete, !isHTTP2, !keepAlive || inputClosed else { return nil }
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        return promise
    }

    /// The upstream said it will close: do not pool it.
    private var spent = false

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamClosed(_ error: Error?) {
        let connection = upstream
        upstream = nil
        // A pooled connection the server closed just as we reused it: retry a request
        // without body once on a fresh connection, before anything was answered.
        if let connection, connection.requests > 1, !retried, requestBodyless, machine.request == .ended,
           machine.response == .none, !machine.answeredLocally, let head = upstreamHead, let endpoint {
            retried = true
            _ = connection
            machine = HTTPExchangeStateMachine()
            _ = machine.requestHead()
            _ = machine.requestEnd()
            buffered.append(.head(head))
            buffered.append(.end(nil))
            lease(endpoint)
            return
        }
        upstreamFailed(connecting: false)
    }

    private func upstreamFailed(connecting: Bool, tls: String? = nil) {
        switch machine.upstreamFailed(connecting: connecting) {
        case .respond(let error): answer(tls.map { .upstreamTLS($0) } ?? error)
        case .abort: abort()
        case .none: resumeDownstreamReads()
        }
    }

    private func timedOut() {
        timeout = nil
        switch machine.timedOut() {
        case .respond(let error): answer(error, close: true)
        case .abort: abort()
        case .none: break
        }
    }

    private var responseVersion: HTTPVersion {
        requestVersion.major == 1 && requestVersion.minor == 0 ? .http1_0 : .http1_1
    }

    // MARK: endings

    /// The proxy answers with an error of its own. The rest of a request body still on
    /// its way is read and dropped, keeping the connection, unless `close` says otherwise
    /// (a timeout: the client is too slow to wait for).
    private func answer(_ error: ProxyError, close forceClose: Bool = false) {
        guard let context else { return }
        loop.metrics.proxyError(direction: direction.rawValue, cause: error.metricCause)
        let (complete, closeAfter) = machine.answerLocally()
        abandonComparison()
        if let upstream {
            self.upstream = nil
            loop.release(upstream, reusable: false)
        }
        buffered.removeAll()
        heldHead = nil
        status = error.status
        responseHeadAt = .now()
        var headers = HTTPHeaders()
        let body = error.cause + "\n"
        telemetry.responseBytes += body.utf8.count
        headers.add(name: "eino-error", value: error.cause)
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        let close = (closeAfter && forceClose) || (!isHTTP2 && !keepAlive)
        if close && !isHTTP2 { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: responseVersion, status: HTTPResponseStatus(statusCode: error.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        // As for a proxied response: finish before the end is written (pipelining).
        if complete { finishExchange() } else if close { recordMetrics() }
        if close {
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            resumeDownstreamReads()
        }
    }

    /// A response is under way and its upstream failed: the only honest signal left is to
    /// cut the downstream connection.
    private func abort() {
        loop.metrics.proxyError(direction: direction.rawValue, cause: "aborted")
        abandonComparison()
        recordMetrics(cut: true)
        if let upstream {
            self.upstream = nil
            loop.release(upstream, reusable: false)
        }
        context?.close(promise: nil)
    }

    /// Counts the exchange's response once: a proxy-made answer or a cut stream is a
    /// failure whatever its status.
    private func recordMetrics(cut: Bool = false) {
        guard status > 0 else { return }
        telemetry.finish(
            status: status, service: routeMetrics?.key.service, backend: routeMetrics?.key.backend,
            peerIdentity: direction == .inbound ? meshPeer?.id : meshUpstream.flatMap { _ in endpoint?.expectedIdentity?.description },
            direction: direction, loop: loop)
        guard let routeMetrics else { return }
        let end = NIODeadline.now()
        routeMetrics.record(
            status: status, latencyNanoseconds: UInt64(max(0, ((responseHeadAt ?? end) - start).nanoseconds)),
            durationNanoseconds: UInt64(max(0, (end - start).nanoseconds)), failure: cut || machine.answeredLocally)
        self.routeMetrics = direction == .inbound ? routeMetrics : nil
        status = 0
    }

    /// The primary has no response of its own to compare.
    private func abandonComparison() {
        comparison?.abandon()
        comparison = nil
    }

    private func finishExchange() {
        if !mirrored.isEmpty {
            let nanoseconds = UInt64(max(0, (NIODeadline.now() - start).nanoseconds))
            for counters in mirrored { counters.stats.primaryLatency.record(nanoseconds: nanoseconds) }
            mirrored.removeAll()
        }
        recordMetrics()
        timeout?.cancel()
        timeout = nil
        if let endpoint {
            endpoint.latency.outstanding -= 1
            self.endpoint = nil
        }
        let reusable = machine.reset() && !spent
        spent = false
        upstreamHead = nil
        if let upstream {
            self.upstream = nil
            loop.release(upstream, reusable: reusable)
        }
        buffered.removeAll()
        heldHead = nil
        headerTimeout?.exchangeCompleted()
        resumeDownstreamReads()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let mirrorCopy {
            self.mirrorCopy = nil
            mirrorCopy.drop(reason: "incomplete")
        }
        abandonComparison()
        timeout?.cancel()
        timeout = nil
        if let endpoint {
            endpoint.latency.outstanding -= 1
            self.endpoint = nil
        }
        if let upstream {
            self.upstream = nil
            loop.release(upstream, reusable: false)
        }
        buffered.removeAll()
        heldHead = nil
        context.fireChannelInactive()
    }

    /// The client half-closed: nothing more will come; close once the exchange is done.
    private var inputClosed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            keepAlive = false
            if machine.isIdle { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, machine.response == .none, !machine.answeredLocally {
            if machine.request == .idle { _ = machine.requestHead() }
            keepAlive = false
            answer(parserError == .headerOverflow ? .headerTooLarge : .badRequest)
            return
        }
        context.close(promise: nil)
    }

    // MARK: upgrade

    /// Turns the downstream connection and its upstream connection into an opaque relay:
    /// the HTTP handlers leave both pipelines, and bytes either decoder read past the
    /// upgrade are passed on.
    private func switchToRelay() {
        guard let context, let upstream else {
            self.context?.close(promise: nil)
            return
        }
        recordMetrics()
        timeout?.cancel()
        timeout = nil
        if let endpoint {
            endpoint.latency.outstanding -= 1
            self.endpoint = nil
        }
        self.upstream = nil
        upstream.handler.owner = nil
        let downstreamRelay = RelayHandler()
        let upstreamRelay = RelayHandler()
        // Decoders leave a pipeline a moment after they are asked to (handing on what they
        // read past the upgrade first), so the relays pair once every removal is done.
        var removals: [EventLoopFuture<Void>] = []
        do {
            let up = upstream.channel.pipeline.syncOperations
            try up.addHandler(upstreamRelay)
            removals.append(up.removeHandler(upstream.handler))
            if let handler = try? up.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self) { removals.append(up.removeHandler(handler)) }
            if let handler = try? up.handler(type: HTTPRequestEncoder.self) { removals.append(up.removeHandler(handler)) }

            let down = context.pipeline.syncOperations
            try down.addHandler(downstreamRelay, position: .after(self))
            if let handler = try? down.handler(type: HTTPServerPipelineHandler.self) { removals.append(down.removeHandler(handler)) }
            if let handler = try? down.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) { removals.append(down.removeHandler(handler)) }
            if let handler = try? down.handler(type: HTTPResponseEncoder.self) { removals.append(down.removeHandler(handler)) }
            if let handler = try? down.handler(type: HeaderTimeoutHandler.self) { removals.append(down.removeHandler(handler)) }
            removals.append(down.removeHandler(context: context))
        } catch {
            upstream.channel.close(promise: nil)
            context.close(promise: nil)
            return
        }
        let downstreamChannel = context.channel
        EventLoopFuture.andAllComplete(removals, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            RelayHandler.pair(downstreamRelay, upstreamRelay)
            upstream.channel.read()
            downstreamChannel.read()
        }
    }

    /// The protocol an HTTP/1.1 request asks to switch to, when it asks properly
    /// (`Upgrade` plus `Connection: upgrade`).
    static func requestedUpgrade(_ headers: HTTPHeaders) -> String? {
        guard let upgrade = headers.first(name: "upgrade"), !upgrade.isEmpty else { return nil }
        let asked = headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
        return asked ? upgrade : nil
    }

    // MARK: headers

    /// How an unknown service is named in `eino-error`: as resolved (`web`, or
    /// `web.other` for another namespace), else the host as written.
    private func unknownName(_ authority: String) -> String {
        let namespace = loop.snapshot?.identity.namespace ?? "default"
        guard let key = Authority.serviceKey(authority, defaultNamespace: namespace) else { return Self.hostName(authority) }
        return key.namespace == namespace ? key.name : "\(key.name).\(key.namespace)"
    }

    static func hostName(_ authority: String) -> String {
        if authority.hasPrefix("[") { return authority }
        if let colon = authority.lastIndex(of: ":") { return String(authority[..<colon]) }
        return authority
    }
}
