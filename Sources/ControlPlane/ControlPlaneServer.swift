import Foundation
import Hummingbird
import HummingbirdTLS
import Deploy
import Identity
import Kubernetes
import Logging
import Manifests
import NIOCore
import NIOSSL

/// `eino control`: the HTTPS API over the store, the CA and (later) the registry.
public struct ControlPlaneServer: Sendable {
    public struct Options: Sendable {
        public var dataDirectory: String
        public var host: String
        public var port: Int
        public var trustDomain: String
        /// Use this CA instead of DATA_DIR's own (created on first start).
        public var caDirectory: String?
        /// Extra DNS names or IP addresses clients may use to reach the control plane.
        public var serverNames: [String]
        /// What fully qualified service references in manifests end in.
        public var clusterDomain: String
        /// Kubernetes mode: the API server is the store, ServiceAccounts the identities, and
        /// the issuer and admin token live in Secrets of `meshNamespace`; no data directory.
        public var kubernetes: KubeConfig?
        public var meshNamespace = "eino-system"
        /// What the injection webhook adds to pods (image, the control plane's URL for them).
        public var injection = InjectionOptions(image: "eino:latest", control: "https://eino-control.eino-system.svc:7443")

        public init(dataDirectory: String, host: String = "127.0.0.1", port: Int = 7443, trustDomain: String = "cluster.local",
                    caDirectory: String? = nil, serverNames: [String] = [], clusterDomain: String = ServiceReference.defaultClusterDomain) {
            self.dataDirectory = dataDirectory
            self.host = host
            self.port = port
            self.trustDomain = trustDomain
            self.caDirectory = caDirectory
            self.serverNames = serverNames
            self.clusterDomain = clusterDomain
        }
    }

    /// The control plane's own identity in the mesh.
    public static func identity(trustDomain: String) throws -> SPIFFEID {
        try SPIFFEID(trustDomain: trustDomain, namespace: "eino-system", serviceAccount: "eino-control")
    }

    let options: Options

    public init(_ options: Options) {
        self.options = options
    }

    /// Serves until SIGTERM or SIGINT. `onReady` receives the bound address once listening.
    public func run(onReady: @escaping @Sendable (String) -> Void) async throws {
        if let kubernetes = options.kubernetes {
            try await runOnKubernetes(kubernetes, onReady: onReady)
        } else {
            try await runOnFiles(onReady: onReady)
        }
    }

    private func runOnFiles(onReady: @escaping @Sendable (String) -> Void) async throws {
        let directory = options.dataDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let authority = try loadOrCreateAuthority()
        let adminToken = try Secrets.loadOrCreateToken(at: URL(fileURLWithPath: directory).appendingPathComponent("admin.token"))
        let store = try ResourceStore(directory: URL(fileURLWithPath: directory))
        let tokens = try JoinTokens(directory: URL(fileURLWithPath: directory))
        let publisher = ConfigPublisher()
        let registry = Registry()
        await registry.setOnChange { [registry] in await publisher.publish(services: registry.services(), store: store) }
        // Every committed store state and every registry change reaches the watchers.
        let storeChanges = Task {
            for await _ in await store.watch() {
                await publisher.publish(services: registry.services(), store: store)
            }
        }
        defer { storeChanges.cancel() }
        try await serve(authority: authority, adminToken: adminToken, joins: tokens, publisher: publisher, registry: registry, onReady: onReady) { _, admin in
            AdminRoutes.addStore(to: admin, store: store, tokens: tokens, clusterDomain: options.clusterDomain)
        }
    }

    private func runOnKubernetes(_ config: KubeConfig, onReady: @escaping @Sendable (String) -> Void) async throws {
        let client = try KubernetesClient(config)
        let secrets = MeshSecrets(client: client, namespace: options.meshNamespace)
        let authority = try await secrets.authority(trustDomain: options.trustDomain)
        let adminToken = try await secrets.adminToken()
        let publisher = ConfigPublisher()
        // Proxies still register (the wire is the same), but endpoints come from EndpointSlices.
        let registry = Registry()
        let log: @Sendable (String) -> Void = { message in FileHandle.standardError.write(Data("eino control: \(message)\n".utf8)) }
        let source = KubernetesSource(
            client: client, publisher: publisher, trustDomain: authority.trustDomain, clusterDomain: options.clusterDomain, log: log)
        let watching = Task { await source.run() }
        let leader = Leader(client: client, namespace: options.meshNamespace, identity: Self.replicaIdentity())
        let leading = Task {
            await leader.run { holds in
                log(holds ? "leading: holds the Lease \(options.meshNamespace)/\(Leader.leaseName)" : "no longer holds the Lease")
                await source.setLeading(holds)
            }
        }
        defer {
            watching.cancel()
            leading.cancel()
        }
        var injection = options.injection
        injection.credential = .serviceAccount
        injection.nativeSidecar = await Self.hasNativeSidecars(client)
        // The API server trusts the webhooks' serving certificate through the trust anchor.
        await WebhookCA.install(client: client, pem: try authority.pem().certificate, log: log)
        try await serve(authority: authority, adminToken: adminToken, joins: ServiceAccountJoin(client: client), publisher: publisher,
                        registry: registry, onReady: onReady) { router, admin in
            AdminRoutes.addKubernetesRefusals(to: admin)
            AdmissionRoutes.add(to: router, source: source, injection: injection, clusterDomain: options.clusterDomain, log: log)
        }
        try? await client.shutdown()
    }

    /// Who this replica is in the Lease: its pod's name (the host name in a pod), and a
    /// random part, so two processes on one host are two replicas.
    static func replicaIdentity() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        return "\(String(cString: name))-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Native sidecars (init containers with `restartPolicy: Always`) need Kubernetes 1.29;
    /// older API servers drop the field silently.
    static func hasNativeSidecars(_ client: KubernetesClient) async -> Bool {
        struct Version: Decodable { var major: String; var minor: String }
        guard let version = try? await client.get("/version", as: Version.self),
              let major = Int(version.major), let minor = Int(version.minor.prefix { $0.isNumber })
        else { return false }
        return (major, minor) >= (1, 29)
    }

    /// What both modes serve: the proxy API, the admin API, mirrors, health and metrics;
    /// `modeRoutes` adds each mode's own (the store, or the webhooks).
    private func serve(authority: CertificateAuthority, adminToken: String, joins: any JoinAuthenticator, publisher: ConfigPublisher,
                       registry: Registry, onReady: @escaping @Sendable (String) -> Void,
                       modeRoutes: (Router<ControlRequestContext>, RouterGroup<ControlRequestContext>) -> Void) async throws {
        let mirrors = MirrorLedger()
        let telemetry = TelemetryAggregator()
        let router = Router(context: ControlRequestContext.self)
        router.get("/v1/health") { _, _ in Response.json(["status": "ok"]) }
        // For Prometheus, like a proxy's admin /metrics: no token needed.
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: await telemetry.prometheusText())))
        }
        ProxyRoutes.add(to: router, authority: authority, joins: joins, registry: registry, publisher: publisher, telemetry: telemetry, mirrors: mirrors)
        let admin = router.group("/v1").add(middleware: AdminAuthentication(adminToken: adminToken))
        AdminRoutes.add(to: admin, registry: registry, telemetry: telemetry)
        modeRoutes(router, admin)
        MirrorRoutes.add(to: admin, ledger: mirrors)

        let expiry = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(registry.heartbeat))
                await registry.expire()
            }
        }
        defer { expiry.cancel() }

        var logger = Logger(label: "eino.control")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: try servingTLS(authority)),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "eino-control"),
            onServerRunning: { channel in
                onReady(channel.localAddress.map(Self.describe) ?? "\(options.host):\(options.port)")
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    private func loadOrCreateAuthority() throws -> CertificateAuthority {
        let directory = options.caDirectory ?? options.dataDirectory
        let certificate = directory + "/" + CertificateAuthority.certificateFileName
        if FileManager.default.fileExists(atPath: certificate) {
            return try CertificateAuthority.load(fromDirectory: directory)
        }
        guard options.caDirectory == nil else {
            throw IdentityError.badPEM(path: certificate, problem: "no CA certificate there (--ca-dir)")
        }
        let authority = try CertificateAuthority.create(trustDomain: options.trustDomain)
        try authority.write(toDirectory: directory, replace: false)
        return authority
    }

    /// A fresh serving certificate each start, named for every way a client may address us:
    /// the CLI checks these names, so a workload certificate (SPIFFE URI only) cannot pass
    /// for the control plane. Client certificates are optional here — the admin API uses
    /// the bearer token — but when a proxy presents one it must chain to our CA.
    private func servingTLS(_ authority: CertificateAuthority) throws -> TLSConfiguration {
        let key = WorkloadKey()
        var names = ["localhost", "127.0.0.1", "::1"] + options.serverNames
        if !["0.0.0.0", "::"].contains(options.host) { names.append(options.host) }
        let identity = try Self.identity(trustDomain: authority.trustDomain)
        let certificate = try authority.issue(
            key.certificateSigningRequest(for: identity), for: identity, hostNames: Array(Set(names)).sorted(),
            lifetime: 365 * 24 * 3600)
        let credentials = try WorkloadCredentials(certificateChain: [certificate], privateKey: key.privateKey)
        var configuration = try MeshTLS.serverConfiguration(
            credentials: credentials, trustBundle: authority.trustBundle, applicationProtocols: ["http/1.1"])
        configuration.certificateVerification = .optionalVerification
        return configuration
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v6: "[\(address.ipAddress ?? "::")]:\(address.port ?? 0)"
        default: "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
    }
}
