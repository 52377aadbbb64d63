import Foundation
import Hummingbird
import ServiceLifecycle
import Identity
import Manifests
import MeshConfig
import NIOCore
import NIOSSL
import Telemetry
import X509

/// Builds the config every proxy watches from the store and the registry, and hands each
/// change to every open watch — encoded once, as the NDJSON line every watcher sends.
actor ConfigPublisher {
    private var version: UInt64 = 0
    private var current = ConfigPublisher.line(ControlWire.ConfigUpdate(version: 0, services: [], resources: []))
    private var watchers: [UUID: AsyncStream<ByteBuffer>.Continuation] = [:]

    func publish(services: [ServiceSpec], store: ResourceStore) async {
        publish(services: services, resources: await store.resources())
    }

    func publish(services: [ServiceSpec], resources: [Resource]) {
        // Milliseconds since 1970 as a floor keeps versions increasing across restarts.
        version = max(version + 1, UInt64(Date().timeIntervalSince1970 * 1000))
        current = Self.line(.init(version: version, services: services, resources: resources))
        for watcher in watchers.values { watcher.yield(current) }
    }

    private static func line(_ update: ControlWire.ConfigUpdate) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return ByteBuffer(bytes: ((try? encoder.encode(update)) ?? Data("{}".utf8)) + [UInt8(ascii: "\n")])
    }

    func watch() -> AsyncStream<ByteBuffer> {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        watchers[id] = continuation
        continuation.yield(current)
        continuation.onTermination = { _ in Task { await self.unwatch(id) } }
        return stream
    }

    private func unwatch(_ id: UUID) {
        watchers[id] = nil
    }
}

/// The endpoints proxies use (docs/api.md, "Proxy API"): join with a token, then, over
/// mTLS with the certificate obtained, renew, register and watch.
enum ProxyRoutes {
    static let leafLifetime: TimeInterval = 24 * 3600
    /// A watch sends an empty line this often so a proxy can tell a silent control plane
    /// from a dead one.
    static let keepAlive: Duration = .seconds(15)

    static func add(to router: Router<ControlRequestContext>, authority: CertificateAuthority, joins: any JoinAuthenticator,
                    registry: Registry, publisher: ConfigPublisher, telemetry: TelemetryAggregator, mirrors: MirrorLedger) {
        router.post("/v1/join") { request, context -> Response in
            let body = try await request.decode(as: ControlWire.JoinRequest.self, context: context)
            let owner: ServiceKey
            switch await joins.authenticate(body) {
            case .success(let key): owner = key
            case .failure(let refusal):
                return .json(ControlAPI.ErrorResponse(error: "unauthorized", message: refusal.message), status: .unauthorized)
            }
            let identity = try SPIFFEID(trustDomain: authority.trustDomain, namespace: owner.namespace, serviceAccount: owner.name)
            return issue(body.csr, for: identity, authority: authority)
        }

        router.post("/v1/renew") { request, context -> Response in
            guard let identity = await context.clientIdentity() else { return certificateRequired() }
            let body = try await request.decode(as: ControlWire.RenewRequest.self, context: context)
            return issue(body.csr, for: identity, authority: authority)
        }

        router.post("/v1/endpoints") { request, context -> Response in
            guard let identity = await context.clientIdentity() else { return certificateRequired() }
            let body = try await request.decode(as: ControlWire.Registration.self, context: context)
            guard case .success = Endpoint.parseAddress(body.address) else {
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: "address must be host:port, got \(body.address)"), status: .badRequest)
            }
            await registry.register(
                service: ServiceKey(name: identity.serviceAccount, namespace: identity.namespace),
                identity: identity.description, address: body.address, labels: body.labels, appProtocol: body.appProtocol)
            return .json(ControlWire.RegistrationReply(heartbeatSeconds: registry.heartbeat))
        }

        router.delete("/v1/endpoints") { request, context -> Response in
            guard let identity = await context.clientIdentity() else { return certificateRequired() }
            let address = request.uri.queryParameters.get("address") ?? ""
            await registry.deregister(identity: identity.description, address: address)
            return .json(["deregistered": address])
        }

        router.post("/v1/report") { request, context -> Response in
            guard await context.clientIdentity() != nil else { return certificateRequired() }
            let report = try await request.decode(as: TelemetryReport.self, context: context)
            let reply = await telemetry.apply(report)
            // Applied once per report, like the metrics: a repeat is refused above.
            if reply.applied && !report.mirrors.isEmpty { await mirrors.add(report.mirrors) }
            return .json(reply)
        }

        router.get("/v1/watch") { _, context -> Response in
            guard await context.clientIdentity() != nil else { return certificateRequired() }
            let updates = await publisher.watch()
            let body = ResponseBody { writer in
                let (lines, feed) = AsyncStream<ByteBuffer>.makeStream()
                let forward = Task {
                    for await line in updates { feed.yield(line) }
                    feed.finish()
                }
                let beat = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: keepAlive)
                        feed.yield(ByteBuffer(string: "\n"))
                    }
                }
                defer {
                    forward.cancel()
                    beat.cancel()
                }
                // A watch never ends by itself: on shutdown it ends here, so the server's
                // graceful shutdown need not wait for the next keep-alive write to fail.
                for await line in lines.cancelOnGracefulShutdown() { try await writer.write(line) }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
        }
    }

    private static func issue(_ csrPEM: String, for identity: SPIFFEID, authority: CertificateAuthority) -> Response {
        do {
            let csr = try CertificateSigningRequest(pemEncoded: csrPEM)
            let certificate = try authority.issue(csr, for: identity, lifetime: leafLifetime)
            return .json(ControlWire.Certificate(
                certificateChain: try certificate.serializeAsPEM().pemString + "\n",
                trustBundle: try authority.trustBundle.pemEncoded(),
                identity: identity.description,
                notAfter: certificate.notValidAfter.timeIntervalSince1970))
        } catch {
            return .json(ControlAPI.ErrorResponse(error: "forbidden", message: "certificate refused: \(error)"), status: .forbidden)
        }
    }

    private static func certificateRequired() -> Response {
        .json(ControlAPI.ErrorResponse(error: "unauthorized", message: "a mesh certificate (mTLS) is required"), status: .unauthorized)
    }
}

extension ControlRequestContext {
    /// The SPIFFE ID of the client certificate, which TLS has already checked against our CA.
    func clientIdentity() async -> SPIFFEID? {
        let channel = self.channel
        let presented = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate?.toDERBytes()
        }.get()
        guard let der = presented ?? nil else { return nil }
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        return try? SPIFFEID(certificate: certificate)
    }
}
