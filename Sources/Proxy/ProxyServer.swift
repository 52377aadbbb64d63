import Foundation
import Identity
import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Telemetry

/// The sidecar: outbound, inbound and admin listeners over one event loop group, running on
/// a static config file. Control operations (start, reload, shutdown) may be called from any
/// thread; request handling never leaves the connection's event loop.
public final class ProxyServer: @unchecked Sendable {
    public let configuration: ProxyConfiguration
    let group: MultiThreadedEventLoopGroup
    /// One per event loop, built once and never changed: reading it needs no lock.
    private let contexts: [ObjectIdentifier: LoopContext]
    private let loops: [LoopContext]
    private let outboundQuiescing: ServerQuiescingHelper
    private let inboundQuiescing: ServerQuiescingHelper

    private struct State {
        var snapshot: MeshSnapshot?
        var version: UInt64 = 0
        var listening = false
        var shuttingDown = false
        var outbound: Channel?
        var inbound: Channel?
        var admin: Channel?
        var fileStamp: FileStamp?
        var reloads: UInt64 = 0
        var rejectedReloads: UInt64 = 0
        /// The static config's `tls:` files, and the material in force.
        var tlsFiles: TLSFiles?
        var material: IdentityMaterial?
        /// The `tls:` files as last loaded, to notice rotated files.
        var tlsStamps: [FileStamp] = []
    }

    private let state = NIOLockedValueBox(State())
    private let stopped: EventLoopPromise<Void>
    private let control = DispatchQueue(label: "eino.proxy.control")
    private var watcher: DispatchSourceTimer?
    /// Span export and access log, shipped off the loops.
    private var shipping: TelemetryShipping?

    public init(configuration: ProxyConfiguration) {
        self.configuration = configuration
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        var contexts: [ObjectIdentifier: LoopContext] = [:]
        var loops: [LoopContext] = []
        for eventLoop in group.makeIterator() {
            let context = LoopContext(eventLoop: eventLoop, configuration: configuration)
            contexts[ObjectIdentifier(eventLoop)] = context
            loops.append(context)
        }
        self.contexts = contexts
        self.loops = loops
        outboundQuiescing = ServerQuiescingHelper(group: group)
        inboundQuiescing = ServerQuiescingHelper(group: group)
        stopped = group.next().makePromise()
    }

    public struct BoundPorts: Sendable {
        public var outbound: SocketAddress
        public var inbound: SocketAddress
        public var admin: SocketAddress
    }

    /// Loads the config and binds the listeners. Throws the config problems or a bind error.
    public func start() throws -> BoundPorts {
        if configuration.configPath != nil {
            switch loadConfig() {
            case .success(let snapshot): install(snapshot)
            case .failure(let problems): throw problems
            }
            try loadIdentityFiles()
        }
        let admin = try AdminServer.bind(server: self, host: configuration.admin.host, port: configuration.admin.port, group: group).wait()
        let outbound = try bindListener(.outbound, configuration.outbound, quiescing: outboundQuiescing).wait()
        let inbound = try bindListener(.inbound, configuration.inbound, quiescing: inboundQuiescing).wait()
        bindIPv6Companion(.outbound, of: outbound, quiescing: outboundQuiescing)
        bindIPv6Companion(.inbound, of: inbound, quiescing: inboundQuiescing)
        state.withLockedValue {
            $0.admin = admin
            $0.outbound = outbound
            $0.inbound = inbound
            $0.listening = true
        }
        let ownPorts = Set([admin, outbound, inbound].compactMap { $0.localAddress?.port })
        for loop in loops { loop.eventLoop.execute { loop.ownPorts.formUnion(ownPorts) } }
        startWatching()
        let shipping = TelemetryShipping(
            configuration: configuration, loops: loops, identity: { [weak self] in self?.currentSnapshot?.identity },
            log: { [weak self] in self?.log($0) })
        shipping.start()
        self.shipping = shipping
        return BoundPorts(outbound: outbound.localAddress!, inbound: inbound.localAddress!, admin: admin.localAddress!)
    }

    /// Ready: listeners bound, a config loaded, not shutting down.
    public var isReady: Bool {
        state.withLockedValue { $0.listening && $0.snapshot != nil && !$0.shuttingDown }
    }

    var currentSnapshot: MeshSnapshot? {
        state.withLockedValue { $0.snapshot }
    }

    /// Completes once the proxy stopped.
    public var stoppedFuture: EventLoopFuture<Void> { stopped.futureResult }

    // MARK: config

    private func loadConfig() -> Result<MeshSnapshot, StaticProxyConfig.Problems> {
        guard let configPath = configuration.configPath else { return .failure(.init([])) }
        let stamp = FileStamp(path: configPath)
        switch StaticProxyConfig.load(path: configPath) {
        case .failure(let problems):
            state.withLockedValue { $0.fileStamp = stamp }
            return .failure(problems)
        case .success(let config):
            let identity = ServiceKey(
                name: configuration.service ?? config.identity?.name ?? "",
                namespace: configuration.namespace ?? config.identity?.namespace ?? "default")
            guard !identity.name.isEmpty else {
                return .failure(.init([.init(file: configPath, line: 1, resource: StaticProxyConfig.kind, field: "identity.service", message: "required (or pass --service)")]))
            }
            let version = state.withLockedValue { state -> UInt64 in
                state.fileStamp = stamp
                state.tlsFiles = config.tls.map { Self.resolve($0, relativeTo: configPath) }
                state.version += 1
                return state.version
            }
            do {
                return .success(try MeshSnapshot.compile(version: version, identity: identity, services: config.services, resources: config.resources))
            } catch {
                return .failure(.init([.init(file: configPath, line: 0, resource: "(file)", field: "(file)", message: "\(error)")]))
            }
        }
    }

    private func install(_ snapshot: MeshSnapshot) {
        state.withLockedValue { $0.snapshot = snapshot }
        for loop in loops {
            loop.eventLoop.execute { loop.install(snapshot) }
        }
    }

    /// Re-reads the config file. An invalid file is rejected with its problems logged and
    /// the running config kept. Returns the version in force afterwards.
    @discardableResult
    public func reload(reason: String) -> Result<UInt64, StaticProxyConfig.Problems> {
        guard configuration.configPath != nil else {
            log("\(reason) ignored: configs come from the control plane")
            return .success(currentSnapshot?.version ?? 0)
        }
        switch loadConfig() {
        case .success(let snapshot):
            install(snapshot)
            do {
                try loadIdentityFiles()
            } catch {
                log("identity files not loaded (\(reason)); keeping the current ones: \(error)")
            }
            state.withLockedValue { $0.reloads += 1 }
            log("config version \(snapshot.version) loaded (\(reason)): \(snapshot.services.count) services")
            return .success(snapshot.version)
        case .failure(let problems):
            state.withLockedValue { $0.rejectedReloads += 1 }
            log("config reload (\(reason)) rejected; keeping version \(currentSnapshot?.version ?? 0):\n\(problems.description)")
            return .failure(problems)
        }
    }

    // MARK: identity

    /// Relative `tls:` paths are read from the config file's directory.
    private static func resolve(_ files: TLSFiles, relativeTo configPath: String) -> TLSFiles {
        let base = (configPath as NSString).deletingLastPathComponent
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") || base.isEmpty ? path : (base as NSString).appendingPathComponent(path)
        }
        return TLSFiles(caFile: absolute(files.caFile), certFile: absolute(files.certFile), keyFile: absolute(files.keyFile))
    }

    /// Static mode: (re)loads the `tls:` files; new material is put in force for new
    /// connections. Throws when they cannot be read (the caller decides whether that is fatal).
    private func loadIdentityFiles() throws {
        guard let files = state.withLockedValue({ $0.tlsFiles }) else { return }
        let stamps = Self.stamps(files)
        let material = try IdentityMaterial.load(certificateFile: files.certFile, keyFile: files.keyFile, bundleFile: files.caFile)
        try installIdentity(material)
        state.withLockedValue { $0.tlsStamps = stamps }
    }

    private static func stamps(_ files: TLSFiles) -> [FileStamp] {
        [files.certFile, files.keyFile, files.caFile].map { FileStamp(path: $0) }
    }

    /// Static-mode rotation: reloads the `tls:` files when one changed. A load that fails
    /// (a key and certificate from different issues, caught mid-rotation) keeps the material
    /// in force and is tried again on the next tick.
    private func reloadIdentityFilesIfChanged() {
        let (files, stamps) = state.withLockedValue { ($0.tlsFiles, $0.tlsStamps) }
        guard let files, Self.stamps(files) != stamps else { return }
        do {
            try loadIdentityFiles()
        } catch {
            log("identity files changed but not loaded yet (will retry): \(error)")
        }
    }

    /// Puts identity material in force: one set of TLS values built here, handed to every
    /// loop the way snapshots are. Connections already open keep the values they began with.
    public func installIdentity(_ material: IdentityMaterial) throws {
        let unchanged = state.withLockedValue { $0.material == material }
        if unchanged { return }
        let runtime = try MeshTLSRuntime(material: material)
        state.withLockedValue { $0.material = material }
        for loop in loops {
            loop.eventLoop.execute { loop.tls = runtime }
        }
        log("mTLS identity \(material.credentials.identity) in force (certificate valid until \(material.credentials.leaf.notValidAfter))")
    }

    private func startWatching() {
        guard let configPath = configuration.configPath, let interval = configuration.watchInterval, interval > .zero else { return }
        let timer = DispatchSource.makeTimerSource(queue: control)
        let nanos = Int(interval.nanoseconds)
        timer.schedule(deadline: .now() + .nanoseconds(nanos), repeating: .nanoseconds(nanos))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let stamp = FileStamp(path: configPath)
            let changed = self.state.withLockedValue { $0.fileStamp != stamp && !$0.shuttingDown }
            if changed { self.reload(reason: "file changed") } else { self.reloadIdentityFilesIfChanged() }
        }
        timer.resume()
        watcher = timer
    }

    /// Control-plane mode: compiles the inputs the control plane sent and puts them in
    /// force. A config that does not compile is logged and the one in force kept.
    public func apply(_ update: ControlWire.ConfigUpdate, identity: ServiceKey) {
        control.async { [self] in
            do {
                let snapshot = try MeshSnapshot.compile(
                    version: update.version, identity: identity, services: update.services, resources: update.resources)
                install(snapshot)
                state.withLockedValue { $0.reloads += 1 }
                log("config version \(snapshot.version) from the control plane: \(snapshot.services.count) services")
            } catch {
                state.withLockedValue { $0.rejectedReloads += 1 }
                log("config version \(update.version) from the control plane rejected; keeping version \(currentSnapshot?.version ?? 0): \(error)")
            }
        }
    }

    /// SIGHUP.
    public func reloadAsync(reason: String) {
        control.async { self.reload(reason: reason) }
    }

    // MARK: listeners

    /// `eino init` redirects IPv6 connections too (to `[::1]` outbound, to the interface's
    /// address inbound), so a listener on IPv4's loopback or wildcard gets an IPv6 twin on the
    /// same port (`::1`, `::`) when the kernel has IPv6. Each family keeps its own socket, so
    /// `SO_ORIGINAL_DST` is asked of the family the connection came in. The twin shuts down
    /// with its listener; when it cannot be bound the proxy says so and serves IPv4.
    private func bindIPv6Companion(_ direction: TrafficDirection, of listener: Channel, quiescing: ServerQuiescingHelper) {
        guard let address = listener.localAddress, let port = address.port,
              FileManager.default.fileExists(atPath: "/proc/net/if_inet6") else { return }
        let host: String
        switch address.ipAddress {
        case "127.0.0.1": host = "::1"
        case "0.0.0.0": host = "::"
        default: return
        }
        do {
            _ = try bindListener(direction, ListenAddress(host: host, port: port), quiescing: quiescing, ipv6Only: true).wait()
        } catch {
            log("\(direction.rawValue) listener: no IPv6 twin on [\(host)]:\(port) (\(error)); serving IPv4 only")
        }
    }

    private func bindListener(_ direction: TrafficDirection, _ address: ListenAddress, quiescing: ServerQuiescingHelper, ipv6Only: Bool = false) -> EventLoopFuture<Channel> {
        let contexts = self.contexts
        let configuration = self.configuration
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if ipv6Only {
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        return bootstrap
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loop = contexts[ObjectIdentifier(channel.eventLoop)]!
                    loop.track(channel)
                    let original = originalDestination(of: channel)
                    let port = original?.port ?? channel.localAddress?.port ?? 0
                    try channel.pipeline.syncOperations.addHandler(ConnectionMetricsHandler(metrics: loop.metrics, direction: direction.rawValue))
                    let detector = ProtocolDetectionHandler(
                        budget: configuration.detectBytes, timeout: configuration.detectTimeout,
                        skip: configuration.opaquePorts.contains(port)
                    ) { detected, context in
                        try Self.install(detected, on: context.channel, loop: loop, direction: direction, original: original)
                    }
                    try channel.pipeline.syncOperations.addHandler(detector)
                }
            }
            .bind(host: address.host, port: address.port)
    }

    /// Sets a connection up for what it speaks.
    private static func install(_ detected: DetectedProtocol, on channel: Channel, loop: LoopContext, direction: TrafficDirection, original: SocketAddress?) throws {
        let pipeline = channel.pipeline.syncOperations
        let configuration = loop.configuration
        if direction == .inbound {
            if detected == .tls, let tls = loop.tls {
                try installMeshServer(tls, on: channel, loop: loop)
                return
            }
            if detected != .tls, configuration.inboundMode == .strict, !isLoopback(channel.remoteAddress) {
                loop.metrics.proxyError(direction: direction.rawValue, cause: "plaintext_refused")
                channel.close(promise: nil)
                return
            }
        }
        switch detected {
        case .http1:
            let headerTimeout = HeaderTimeoutHandler(timeout: configuration.headerTimeout) {
                loop.metrics.proxyError(direction: direction.rawValue, cause: ProxyError.headerTimeout.metricCause)
            }
            try pipeline.addHandler(headerTimeout)
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderListSize = configuration.maxHeaderBytes
            limits.maxHeaderFieldSize = configuration.maxHeaderBytes
            try pipeline.configureHTTPServerPipeline(
                position: .last, withPipeliningAssistance: true, withServerUpgrade: nil, withErrorHandling: false,
                withOutboundHeaderValidation: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try pipeline.addHandler(HTTPProxyHandler(loop: loop, direction: direction, isHTTP2: false, original: original, headerTimeout: headerTimeout))
        case .http2:
            try serveHTTP2(on: channel, maxHeaderBytes: configuration.maxHeaderBytes) {
                HTTPProxyHandler(loop: loop, direction: direction, isHTTP2: true, original: original)
            }
        case .tls, .opaque:
            let relay = RelayHandler()
            try pipeline.addHandler(relay)
            let target: SocketAddress
            var meshEndpoint: EndpointState?
            switch direction {
            case .inbound:
                // Plaintext or relayed TLS: no verified identity, so no listed source.
                guard loop.admitsConnection(from: nil) else {
                    channel.close(promise: nil)
                    return
                }
                // A redirected connection goes to the app on the port it was going to.
                let app = if let port = original?.port { loop.app(port: port) } else { loop.app }
                guard let app else {
                    loop.metrics.proxyError(direction: direction.rawValue, cause: ProxyError.forbidden.metricCause)
                    channel.close(promise: nil)
                    return
                }
                target = try app.socketAddress ?? SocketAddress.makeAddressResolvingHost(app.endpoint.host, port: app.endpoint.port)
            case .outbound:
                // Only a transparently redirected connection says where it was going.
                guard let original else {
                    loop.metrics.proxyError(direction: direction.rawValue, cause: "no_original_destination")
                    channel.close(promise: nil)
                    return
                }
                // A service's virtual IP or an endpoint's address: split per connection and
                // balanced over endpoints. Any other destination is passed through as it is.
                if let ip = original.ipAddress, let service = loop.snapshot?.service(forDestination: ip) {
                    guard case .service(let key) = service.routeConnection(random: loop.random.next()),
                          let runtime = loop.runtime(for: key), let endpoint = loop.pickEndpoint(runtime)
                    else {
                        loop.metrics.proxyError(direction: direction.rawValue, cause: ProxyError.noEndpoints.metricCause)
                        channel.close(promise: nil)
                        return
                    }
                    target = try endpoint.socketAddress ?? SocketAddress.makeAddressResolvingHost(endpoint.endpoint.host, port: endpoint.endpoint.port)
                    if endpoint.expectedIdentity != nil { meshEndpoint = endpoint }
                } else {
                    loop.metrics.unmeshed.tcpConnections &+= 1
                    target = original
                }
            }
            // Opaque TCP to another proxy goes over mTLS with its own ALPN value, and says
            // which of the app's ports it is for.
            let port = appPort(of: original, loop: loop)
            let mesh = meshEndpoint.flatMap { endpoint in
                loop.tls.map { (port == nil ? $0.tcpClient : $0.tcpToPortClient, endpoint.expectedIdentity) }
            }
            connectRelay(relay, from: channel, to: target, loop: loop, direction: direction, mesh: mesh, destinationPort: port)
        }
    }

    /// Connects to `target` and pairs `relay` (on `channel`) with the new connection.
    private static func connectRelay(
        _ relay: RelayHandler, from channel: Channel, to target: SocketAddress, loop: LoopContext,
        direction: TrafficDirection, mesh: (MeshTLSClient, SPIFFEID?)?, destinationPort: Int? = nil
    ) {
        let configuration = loop.configuration
        let handshakes = HandshakeSlot()
        let connected = ClientBootstrap(group: channel.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectTimeout(configuration.connectTimeout)
            .channelInitializer { upstream in
                upstream.eventLoop.makeCompletedFuture {
                    if let (client, expected) = mesh {
                        handshakes.future = try loop.addMeshTLS(to: upstream, client: client, expecting: expected)
                    }
                }
            }
            .connect(to: target)
        // Over mTLS the relay starts once the peer is verified: bytes (and a half-close, which
        // would otherwise end the TCP output before the handshake) wait for it. Its upstream
        // half joins here, in the same turn as the connect or handshake completes, so it sees
        // the first bytes the upstream sends.
        handshakes.verified(connected).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                guard channel.isActive else {
                    upstream.close(promise: nil)
                    return
                }
                if mesh != nil, let destinationPort {
                    // The `eino-tcp-port` header goes before the relayed bytes.
                    var header = upstream.allocator.buffer(capacity: 2)
                    header.writeInteger(UInt16(truncatingIfNeeded: destinationPort))
                    upstream.write(header, promise: nil)
                }
                let upstreamRelay = RelayHandler()
                do {
                    try upstream.pipeline.syncOperations.addHandler(upstreamRelay)
                } catch {
                    upstream.close(promise: nil)
                    channel.close(promise: nil)
                    return
                }
                RelayHandler.pair(relay, upstreamRelay)
            case .failure(let error):
                let cause = (error as? MeshUpstreamError).map { ProxyError.upstreamTLS($0.cause) } ?? .connectFailed
                loop.metrics.proxyError(direction: direction.rawValue, cause: cause.metricCause)
                channel.close(promise: nil)
            }
        }
    }

    /// Inbound mTLS from another proxy: terminate it, then serve what ALPN chose — `h2`
    /// as HTTP (given to the app as HTTP/1.1, with the verified client identity in
    /// `eino-client-id`), `eino-tcp` as bytes relayed to the app.
    private static func installMeshServer(_ tls: MeshTLSRuntime, on channel: Channel, loop: LoopContext) throws {
        let configuration = loop.configuration
        let handler = tls.server.makeHandler()
        let halfClose = HalfCloseAfterHandshake(limit: configuration.detectTimeout)
        try channel.pipeline.syncOperations.addHandler(halfClose)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.pipeline.syncOperations.addHandler(InboundTLSRouter(tlsHandler: handler, halfClose: halfClose) { negotiated, peer, context in
            let channel = context.channel
            let pipeline = channel.pipeline.syncOperations
            let meshPeer = peer.map(MeshPeer.init)
            switch negotiated {
            case MeshALPN.http2:
                try serveHTTP2(on: channel, maxHeaderBytes: configuration.maxHeaderBytes, fromMesh: true) {
                    HTTPProxyHandler(loop: loop, direction: .inbound, isHTTP2: true, fromMesh: true, meshPeer: meshPeer)
                }
            case MeshALPN.tcp, MeshALPN.tcpToPort:
                guard loop.admitsConnection(from: meshPeer?.source) else {
                    channel.close(promise: nil)
                    return
                }
                /// Relays to the app on `port` (0: `--app`'s), refusing the proxy's own ports.
                func relay(toPort port: Int, after handler: ChannelHandler? = nil) throws {
                    guard let app = port == 0 ? loop.app : loop.app(port: port) else {
                        loop.metrics.proxyError(direction: TrafficDirection.inbound.rawValue, cause: ProxyError.forbidden.metricCause)
                        channel.close(promise: nil)
                        return
                    }
                    let relay = RelayHandler()
                    try pipeline.addHandler(relay, position: handler.map { .after($0) } ?? .last)
                    let target = try app.socketAddress ?? SocketAddress.makeAddressResolvingHost(app.endpoint.host, port: app.endpoint.port)
                    connectRelay(relay, from: channel, to: target, loop: loop, direction: .inbound, mesh: nil)
                }
                if negotiated == MeshALPN.tcp {
                    try relay(toPort: 0)
                } else {
                    // The port comes first; the relay is added once it is known.
                    let reader = DestinationPortReader { port, context in try relay(toPort: port, after: context.handler) }
                    try pipeline.addHandler(reader)
                }
            default:
                loop.metrics.proxyError(direction: TrafficDirection.inbound.rawValue, cause: "unknown_alpn")
                channel.close(promise: nil)
            }
        })
    }

    /// The port a redirected connection was going to, for the peer proxy to reach its app
    /// on: a pod's address names the app's own port. A virtual IP's port is the service's,
    /// which need not be the app's, so for those (and connections not redirected) the
    /// peer uses its `--app`.
    static func appPort(of original: SocketAddress?, loop: LoopContext) -> Int? {
        guard let original, let ip = original.ipAddress, loop.snapshot?.service(forClusterIP: ip) == nil else { return nil }
        return original.port
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return true }  // Unix sockets and the like
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    // MARK: admin

    /// Counters of every loop, merged, for a telemetry report.
    public func metricsSnapshot() async throws -> MetricsSnapshot {
        try await gatherMetrics(on: group.next()).get()
    }

    /// Counters of every loop, merged. Each loop copies its own on its own thread.
    func gatherMetrics(on eventLoop: EventLoop) -> EventLoopFuture<MetricsSnapshot> {
        let copies = loops.map { loop in loop.eventLoop.submit { loop.metrics.snapshot() } }
        return EventLoopFuture.reduce(into: MetricsSnapshot(), copies, on: eventLoop) { $0.merge($1) }.map { merged in
            var result = merged
            let (version, reloads, rejected, material) = self.state.withLockedValue { ($0.snapshot?.version ?? 0, $0.reloads, $0.rejectedReloads, $0.material) }
            result.scalars = [
                .init("eino_config_version", "Version of the config snapshot in force.", .gauge, Double(version)),
                .init("eino_config_reloads", "Config reloads applied since start.", .gauge, Double(reloads)),
                .init("eino_config_reloads_rejected", "Config reloads rejected as invalid since start.", .gauge, Double(rejected)),
                .init("eino_ready", "1 when the proxy is ready.", .gauge, self.isReady ? 1 : 0),
            ]
            result.scalars += self.shipping?.counters ?? []
            if let leaf = material?.credentials.leaf {
                result.scalars.append(.init("eino_certificate_expiry_seconds",
                    "Unix time at which the proxy's mTLS certificate expires.", .gauge, leaf.notValidAfter.timeIntervalSince1970))
            }
            result.scalars += ProcessMetrics.current()
            return result
        }
    }

    public func mirrorSnapshot() async throws -> MirrorSnapshot {
        try await gatherMirrors(on: group.next()).get()
    }

    /// Mirror counters of every loop, merged.
    func gatherMirrors(on eventLoop: EventLoop) -> EventLoopFuture<MirrorSnapshot> {
        let copies = loops.map { loop in loop.eventLoop.submit { loop.mirrorMetrics.snapshot() } }
        return EventLoopFuture.reduce(into: MirrorSnapshot(), copies, on: eventLoop) { $0.merge($1) }
    }

    // MARK: shutdown

    /// Stops accepting, lets in-flight requests finish (closing idle keep-alives, GOAWAY on
    /// HTTP/2) for at most the drain timeout, then stops. Safe to call more than once.
    public func shutdown(reason: String) {
        let first = state.withLockedValue { state -> Bool in
            defer { state.shuttingDown = true }
            return !state.shuttingDown
        }
        guard first else { return }
        log("shutting down (\(reason)); draining for up to \(configuration.drainTimeout.nanoseconds / 1_000_000) ms")
        watcher?.cancel()
        for loop in loops { loop.eventLoop.execute { loop.draining = true; loop.closeAllIdle() } }
        let eventLoop = group.next()
        let outboundDone = eventLoop.makePromise(of: Void.self)
        let inboundDone = eventLoop.makePromise(of: Void.self)
        outboundQuiescing.initiateShutdown(promise: outboundDone)
        inboundQuiescing.initiateShutdown(promise: inboundDone)
        let drained = outboundDone.futureResult.and(inboundDone.futureResult).map { _ in () }
        let deadline = eventLoop.scheduleTask(in: configuration.drainTimeout) {}
        drained.whenComplete { _ in deadline.cancel() }
        let finished = eventLoop.makePromise(of: Void.self)
        drained.whenComplete { _ in finished.succeed(()) }
        deadline.futureResult.whenSuccess { _ in
            self.log("drain timeout reached; closing what is left")
            let closes = self.loops.map { loop in loop.eventLoop.flatSubmit { loop.closeAllDownstream() } }
            EventLoopFuture.andAllComplete(closes, on: eventLoop).whenComplete { _ in finished.succeed(()) }
        }
        finished.futureResult.whenComplete { _ in
            let admin = self.state.withLockedValue { $0.admin }
            let stops = self.loops.map { loop in loop.eventLoop.submit { loop.stop() } }
            EventLoopFuture.andAllComplete(stops, on: eventLoop).whenComplete { _ in
                admin?.close(promise: nil)
                self.stopped.succeed(())
            }
        }
    }

    /// Returns once the proxy stopped, having released its threads. Suspends instead of
    /// blocking: peer-certificate verification runs on the same concurrency pool, which has
    /// one thread when the proxy is pinned to one CPU.
    public func untilStopped() async {
        try? await stopped.futureResult.get()
        shipping?.stop()
        try? await group.shutdownGracefully()
    }

    func log(_ message: String) {
        proxyLog(message)
    }
}

/// One line on stderr, for what an operator should see: reloads, shutdown, a peer's GOAWAY.
func proxyLog(_ message: String) {
    FileHandle.standardError.write(Data("eino proxy: \(message)\n".utf8))
}

/// Identifies a version of a file cheaply, to notice changes.
struct FileStamp: Equatable {
    var modified: Date?
    var size: Int?
    var inode: Int?

    init(path: String) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        modified = attributes?[.modificationDate] as? Date
        size = (attributes?[.size] as? NSNumber)?.intValue
        inode = (attributes?[.systemFileNumber] as? NSNumber)?.intValue
    }
}

/// Where a transparently redirected connection was going (`SO_ORIGINAL_DST`); nil for one
/// that was not redirected.
func originalDestination(of channel: Channel) -> SocketAddress? {
    guard let provider = channel as? SocketOptionProvider, let local = channel.localAddress else { return nil }
    var result: SocketAddress?
    switch local {
    case .v4:
        provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_IP), name: SocketOptionName(80)).assumeIsolated().whenSuccess { (address: sockaddr_in) in
            result = SocketAddress(address, host: "")
        }
    case .v6:
        provider.unsafeGetSocketOption(level: SocketOptionLevel(IPPROTO_IPV6), name: SocketOptionName(80)).assumeIsolated().whenSuccess { (address: sockaddr_in6) in
            result = SocketAddress(address, host: "")
        }
    default:
        return nil
    }
    // A connection that was not redirected reports its own local address; treat as none.
    if let result, result == local { return nil }
    return result
}

/// Serves HTTP/2 on a connection whose protocol is known: every stream becomes HTTP/1 parts
/// for its own proxy handler. An h2 client's EOF ends the connection (half-closure is for
/// opaque TCP). Called on the channel's event loop. `fromMesh`: the client is a peer proxy,
/// whose header blocks `HTTPProxyHandler` checks itself (ReceivedFields).
func serveHTTP2(on channel: Channel, maxHeaderBytes: Int, fromMesh: Bool = false, makeHandler: @escaping @Sendable () -> HTTPProxyHandler) throws {
    try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: false)
    var connection: NIOHTTP2Handler.ConnectionConfiguration = fromMesh ? .mesh : .init()
    connection.initialSettings = [
        HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
        HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderBytes),
    ]
    // Graceful close on shutdown (the quiesce event): GOAWAY with the highest stream ID, a
    // PING, then GOAWAY naming the last stream taken; the connection closes once those are
    // done. Timers stay off: the drain timeout bounds the wait, idle connections are the
    // client's to close.
    let manager = NIOHTTP2ServerConnectionManagementHandler(
        eventLoop: channel.eventLoop,
        configuration: .init(maxIdleTime: nil, maxAge: nil, maxGraceTime: nil, keepalive: nil))
    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler(), position: .last)
    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
        mode: .server, connectionConfiguration: connection, streamConfiguration: .init(),
        streamDelegate: manager.http2StreamDelegate, position: .last
    ) { stream in
        stream.eventLoop.makeCompletedFuture {
            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
            try stream.pipeline.syncOperations.addHandler(makeHandler())
        }
    }
    try channel.pipeline.syncOperations.addHandler(manager)
}
