import Manifests

/// What a proxy and the control plane say to each other (docs/api.md, "Proxy API").
/// The control plane sends the *inputs* of a snapshot — services with their registered
/// endpoints, and the stored manifests — and each proxy compiles them with
/// `MeshSnapshot.compile`, exactly as in static mode, so both modes enforce the same rules.
public enum ControlWire {
    /// `POST /v1/join`: a join token (bare hosts) or a projected ServiceAccount token
    /// (Kubernetes, audience ``identityAudience``) buys one certificate for the identity it
    /// proves.
    public struct JoinRequest: Codable, Sendable {
        public var token: String?
        public var identityToken: String?
        /// PEM CSR made from a key that never leaves the proxy.
        public var csr: String

        public init(token: String? = nil, identityToken: String? = nil, csr: String) {
            self.token = token
            self.identityToken = identityToken
            self.csr = csr
        }
    }

    /// The audience of the ServiceAccount tokens proxies present in Kubernetes mode.
    public static let identityAudience = "identity.eino.dev"

    /// The answer to a join or a renewal.
    public struct Certificate: Codable, Sendable {
        /// PEM: the leaf, then any intermediates.
        public var certificateChain: String
        /// PEM: every root the mesh trusts now.
        public var trustBundle: String
        /// The SPIFFE ID the certificate holds.
        public var identity: String
        /// Seconds since 1970.
        public var notAfter: Double

        public init(certificateChain: String, trustBundle: String, identity: String, notAfter: Double) {
            self.certificateChain = certificateChain
            self.trustBundle = trustBundle
            self.identity = identity
            self.notAfter = notAfter
        }
    }

    /// `POST /v1/renew` over mTLS: a new certificate for the identity already held.
    public struct RenewRequest: Codable, Sendable {
        public var csr: String

        public init(csr: String) {
            self.csr = csr
        }
    }

    /// `POST /v1/endpoints` over mTLS: registers (and, repeated, keeps alive) this proxy's
    /// inbound address for the service its certificate names.
    public struct Registration: Codable, Sendable, Equatable {
        /// `host:port` other proxies dial: the proxy's inbound listener.
        public var address: String
        public var labels: [String: String]
        /// What the proxy's app speaks (`--app-protocol`); absent means http.
        public var appProtocol: AppProtocol?

        public init(address: String, labels: [String: String] = [:], appProtocol: AppProtocol? = nil) {
            self.address = address
            self.labels = labels
            self.appProtocol = appProtocol == .http ? nil : appProtocol
        }
    }

    public struct RegistrationReply: Codable, Sendable {
        /// Re-register at least this often, or be dropped after three missed intervals.
        public var heartbeatSeconds: Double

        public init(heartbeatSeconds: Double) {
            self.heartbeatSeconds = heartbeatSeconds
        }
    }

    /// One line of the `GET /v1/watch` stream (newline-delimited JSON): the whole input of
    /// a snapshot, sent at connect and after every change.
    public struct ConfigUpdate: Codable, Sendable, Equatable {
        /// Increases with every change of the store or the registry.
        public var version: UInt64
        public var services: [ServiceSpec]
        public var resources: [Resource]

        public init(version: UInt64, services: [ServiceSpec], resources: [Resource]) {
            self.version = version
            self.services = services
            self.resources = resources
        }
    }
}
