import Foundation
import Hummingbird
import Manifests
import NIOCore
import NIOSSL

/// Per-request context: the channel is kept so handlers can ask TLS who the peer is.
public struct ControlRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Manifests are at most 4 MiB each; a few of them fit.
    public var maxUploadSize: Int { 16 << 20 }

    /// Whether the peer presented a client certificate: a proxy, not an administrator.
    func presentedClientCertificate() async -> Bool {
        let channel = self.channel
        return (try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate != nil
        }.get()) ?? false
    }
}

/// Admin endpoints require the admin token as `Authorization: Bearer TOKEN`.
/// Without it: 401; a proxy's own credential (its client certificate) earns 403, since
/// it authenticates a workload, not an administrator.
struct AdminAuthentication: RouterMiddleware {
    let adminToken: String

    func handle(_ request: Request, context: ControlRequestContext, next: (Request, ControlRequestContext) async throws -> Response) async throws -> Response {
        let header = request.headers[.authorization] ?? ""
        if header.hasPrefix("Bearer "), Secrets.equal(String(header.dropFirst("Bearer ".count)), adminToken) {
            return try await next(request, context)
        }
        if await context.presentedClientCertificate() {
            return .json(ControlAPI.ErrorResponse(error: "forbidden", message: "proxy credentials cannot use the admin API"), status: .forbidden)
        }
        let message = header.isEmpty ? "admin token required (Authorization: Bearer …)" : "admin token not accepted"
        return .json(ControlAPI.ErrorResponse(error: "unauthorized", message: message), status: .unauthorized)
    }
}

/// Routes of the admin API: stat and endpoints in every mode; apply, get, delete and join
/// tokens over the file store. See docs/api.md.
enum AdminRoutes {
    static func add(to group: RouterGroup<ControlRequestContext>, registry: Registry, telemetry: TelemetryAggregator) {
        group.get("stat") { request, _ -> Response in
            let window = request.uri.queryParameters.get("window") ?? "1m"
            guard let seconds = TelemetryAggregator.windows[window] else {
                let known = TelemetryAggregator.windows.sorted { $0.value < $1.value }.map(\.key).joined(separator: ", ")
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: "window must be one of \(known), got \(window)"), status: .badRequest)
            }
            let service: String? = request.uri.queryParameters.get("service").map { String($0) }
            return .json(ControlAPI.StatResponse(window: window, rows: await telemetry.stat(seconds: seconds, service: service)))
        }

        group.get("endpoints") { _, _ -> Response in
            .json(ControlAPI.EndpointList(items: await registry.all.map {
                ControlAPI.EndpointRow(service: $0.service.name, namespace: $0.service.namespace, address: $0.address,
                                       identity: $0.identity, labels: $0.labels, lastSeen: $0.lastSeen.timeIntervalSince1970)
            }))
        }
    }

    /// In Kubernetes mode the API server is the store and ServiceAccounts are the
    /// identities: what would change them here is refused with where to go instead.
    static func addKubernetesRefusals(to group: RouterGroup<ControlRequestContext>) {
        let refusal = Response.json(ControlAPI.ErrorResponse(
            error: "conflict", message: "this control plane reads its resources from the Kubernetes API and identities from ServiceAccounts: use kubectl"),
            status: .conflict)
        for path in ["tokens", "apply", "delete"] { group.post(RouterPath(path)) { _, _ in refusal } }
        group.get("resources/**") { _, _ in refusal }
        group.delete("resources/**") { _, _ in refusal }
    }

    static func addStore(to group: RouterGroup<ControlRequestContext>, store: ResourceStore, tokens: JoinTokens, clusterDomain: String) {
        group.post("tokens") { request, context -> Response in
            let body = try await request.decode(as: ControlAPI.TokenRequest.self, context: context)
            if let problem = Names.serviceProblem(body.service) ?? Names.namespaceProblem(body.namespace) {
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: problem), status: .badRequest)
            }
            guard (1...30 * 24 * 3600).contains(body.ttlSeconds) else {
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: "ttl must be between 1 s and 30 days"), status: .badRequest)
            }
            guard (0...1_000_000).contains(body.uses ?? 1) else {
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: "uses must be between 0 (no limit) and 1000000"), status: .badRequest)
            }
            let (token, expiresAt) = try await tokens.create(service: body.service, namespace: body.namespace, ttl: TimeInterval(body.ttlSeconds), uses: body.uses ?? 1)
            return .json(ControlAPI.TokenResponse(token: token, service: body.service, namespace: body.namespace, expiresAt: expiresAt.timeIntervalSince1970))
        }

        group.post("apply") { request, context -> Response in
            let body = try await request.decode(as: ControlAPI.ApplyRequest.self, context: context)
            var resources: [Resource] = []
            var problems: [ManifestProblem] = []
            for file in body.files {
                let decoded = ManifestDecoder.decode(bytes: Array(file.content.utf8), file: file.name, clusterDomain: clusterDomain)
                resources += decoded.resources
                problems += decoded.problems
            }
            guard problems.isEmpty else { return invalid(problems) }
            guard !resources.isEmpty else {
                return .json(ControlAPI.ErrorResponse(error: "bad_request", message: "no resources in the request"), status: .badRequest)
            }
            return await change(store, dryRun: body.dryRun) { store in try await store.apply(resources, dryRun: body.dryRun) }
        }

        group.post("delete") { request, context -> Response in
            let body = try await request.decode(as: ControlAPI.ApplyRequest.self, context: context)
            var ids: [ResourceID] = []
            var problems: [ManifestProblem] = []
            for file in body.files {
                let decoded = ManifestDecoder.decode(bytes: Array(file.content.utf8), file: file.name, clusterDomain: clusterDomain)
                ids += decoded.resources.map(\.id)
                problems += decoded.problems
            }
            guard problems.isEmpty else { return invalid(problems) }
            return await change(store, dryRun: body.dryRun) { store in try await store.delete(ids, dryRun: body.dryRun) }
        }

        group.get("resources/:kind") { request, context -> Response in
            let kind = try kindParameter(context)
            let namespace = request.uri.queryParameters.get("namespace")
            let items = await store.resources(of: kind).filter { namespace == nil || $0.metadata.namespace == namespace }
            return .json(ControlAPI.ResourceList(revision: await store.state.revision, items: items))
        }

        group.get("resources/:kind/:namespace/:name") { _, context -> Response in
            let id = try resourceID(context)
            guard let resource = await store.resource(id) else { return notFound(id) }
            return .json(ControlAPI.ResourceList(revision: await store.state.revision, items: [resource]))
        }

        group.delete("resources/:kind/:namespace/:name") { request, context -> Response in
            let id = try resourceID(context)
            let dryRun = request.uri.queryParameters.get("dryRun") == "true"
            return await change(store, dryRun: dryRun) { store in try await store.delete([id], dryRun: dryRun) }
        }
    }

    private static func change(
        _ store: ResourceStore, dryRun: Bool, _ body: (ResourceStore) async throws -> [ResourceStore.Outcome]
    ) async -> Response {
        do {
            let outcomes = try await body(store)
            let revision = await store.state.revision
            return .json(ControlAPI.ChangeResponse(revision: revision, dryRun: dryRun, results: outcomes.map(ControlAPI.ResultRow.init)))
        } catch {
            switch error as? ResourceStore.Failure ?? .io("\(error)") {
            case .invalid(let problems):
                return invalid(problems)
            case .conflict(let id, let given, let stored):
                let message = "\(id) has resourceVersion \(stored ?? "none") in the store, not \(given); get it again and re-apply"
                return .json(ControlAPI.ErrorResponse(error: "conflict", message: message), status: .conflict)
            case .notFound(let ids):
                return .json(ControlAPI.ErrorResponse(error: "not_found", message: "not found: \(ids.map(\.description).joined(separator: ", "))"), status: .notFound)
            case .io(let message):
                return .json(ControlAPI.ErrorResponse(error: "internal", message: message), status: .internalServerError)
            }
        }
    }

    private static func invalid(_ problems: [ManifestProblem]) -> Response {
        .json(ControlAPI.ErrorResponse(
            error: "invalid", message: "\(problems.count) problem\(problems.count == 1 ? "" : "s"); nothing was changed",
            problems: problems.map(ControlAPI.Problem.init)), status: .unprocessableContent)
    }

    private static func notFound(_ id: ResourceID) -> Response {
        .json(ControlAPI.ErrorResponse(error: "not_found", message: "\(id) not found"), status: .notFound)
    }

    private static func kindParameter(_ context: ControlRequestContext) throws -> ResourceKind {
        let name = context.parameters.get("kind") ?? ""
        guard let kind = ResourceKind(plural: name) else {
            throw HTTPError(.notFound, message: "unknown kind \(name); kinds: \(ResourceKind.allCases.map(\.plural).joined(separator: ", "))")
        }
        return kind
    }

    private static func resourceID(_ context: ControlRequestContext) throws -> ResourceID {
        ResourceID(kind: try kindParameter(context), namespace: context.parameters.get("namespace") ?? "", name: context.parameters.get("name") ?? "")
    }
}

extension Response {
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
