import Crypto
import NIOCore
import NIOSSL
import X509

/// TLS between Eino proxies: TLS 1.3 only, both sides present a certificate, and both verify
/// the other with `PeerVerifier` instead of BoringSSL's checks.
///
/// The callback has to be attached per connection (NIOSSL takes it in the handler's
/// initializer, not in the context), so these types hand out ready handlers rather than bare
/// contexts. Build one value per (credentials, bundle) pair and reuse it for every connection:
/// the `NIOSSLContext` inside is the expensive, shareable part. On rotation build a new value;
/// connections opened with the old one keep working until they close.
public enum MeshTLS {
    /// The server side's `TLSConfiguration`: mTLS required, TLS 1.3 only, `applicationProtocols`
    /// offered in the order given. Exposed so the proxy can adjust it (e.g. timeouts), but a
    /// context built from it only checks peers through `MeshTLSServer.makeHandler()`.
    public static func serverConfiguration(
        credentials: WorkloadCredentials, trustBundle: TrustBundle, applicationProtocols: [String]
    ) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: try credentials.certificateChain.map { .certificate(try nioCertificate($0)) },
            privateKey: .privateKey(try nioPrivateKey(credentials.privateKey)),
            trustRoots: .certificates(try trustBundle.roots.map(nioCertificate)))
        restrict(&configuration, applicationProtocols: applicationProtocols)
        return configuration
    }

    /// The client side's `TLSConfiguration`: presents our chain, TLS 1.3 only, no hostname
    /// check (peers are named by SPIFFE ID, not DNS; the callback checks the ID instead).
    public static func clientConfiguration(
        credentials: WorkloadCredentials, trustBundle: TrustBundle, applicationProtocols: [String]
    ) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = try credentials.certificateChain.map { .certificate(try nioCertificate($0)) }
        configuration.privateKey = .privateKey(try nioPrivateKey(credentials.privateKey))
        configuration.trustRoots = .certificates(try trustBundle.roots.map(nioCertificate))
        restrict(&configuration, applicationProtocols: applicationProtocols)
        return configuration
    }

    private static func restrict(_ configuration: inout TLSConfiguration, applicationProtocols: [String]) {
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        // Verification must stay on: with `.none` NIOSSL skips the custom callback and a
        // client would not even be asked for a certificate.
        configuration.certificateVerification = .noHostnameVerification
        configuration.applicationProtocols = applicationProtocols
    }

    /// The verified peer identity on a connection, or nil if the handshake has not completed
    /// (or the handler was not made by `MeshTLSServer` / `MeshTLSClient`). Call it on the
    /// channel's event loop after `TLSUserEvent.handshakeCompleted`.
    public static func peerIdentity(of handler: NIOSSLHandler) -> SPIFFEID? {
        guard let leaf = handler.peerValidatedCertificateChain?.leaf,
              let certificate = try? Certificate(derEncoded: leaf.toDERBytes())
        else { return nil }
        return try? SPIFFEID(certificate: certificate)
    }

    static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: PEM.der(certificate), format: .der)
    }

    static func nioPrivateKey(_ key: P256.Signing.PrivateKey) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der)
    }

    /// The custom verification callback both sides install. It parses the presented chain on
    /// the event loop, verifies it off the loop (`Verifier` is async) and completes the
    /// promise with the validated chain, so `peerValidatedCertificateChain` is set afterwards.
    static func verificationCallback(
        verifier: PeerVerifier, role: PeerRole, expecting expected: SPIFFEID?, onFailure: (@Sendable (PeerVerificationError) -> Void)?
    ) -> NIOSSLCustomVerificationCallbackWithMetadata {
        { presented, promise in
            let parsed: [Certificate]
            do {
                parsed = try presented.map { try Certificate(derEncoded: $0.toDERBytes()) }
            } catch {
                onFailure?(PeerVerificationError(kind: .untrusted, description: "peer certificate does not parse: \(error)"))
                promise.succeed(.failed)
                return
            }
            promise.completeWithTask {
                switch await verifier.verify(parsed, as: role, expecting: expected) {
                case .success(let peer):
                    let chain = try peer.chain.map(nioCertificate)
                    return .certificateVerified(VerificationMetadata(ValidatedCertificateChain(chain)))
                case .failure(let error):
                    onFailure?(error)
                    return .failed
                }
            }
        }
    }
}

/// The inbound (server) side of proxy-to-proxy mTLS.
public struct MeshTLSServer: Sendable {
    public let context: NIOSSLContext
    public let verifier: PeerVerifier
    private let onFailure: (@Sendable (PeerVerificationError) -> Void)?

    /// - Parameters:
    ///   - applicationProtocols: ALPN values to accept, most preferred first (e.g. `["h2",
    ///     "eino-tcp"]`); the negotiated one arrives in `TLSUserEvent.handshakeCompleted`.
    ///   - onFailure: told why a client was refused (for logs and metrics); the handshake
    ///     fails either way.
    public init(
        credentials: WorkloadCredentials, trustBundle: TrustBundle, applicationProtocols: [String],
        onFailure: (@Sendable (PeerVerificationError) -> Void)? = nil
    ) throws {
        self.context = try NIOSSLContext(configuration: MeshTLS.serverConfiguration(
            credentials: credentials, trustBundle: trustBundle, applicationProtocols: applicationProtocols))
        self.verifier = PeerVerifier(trustBundle: trustBundle, trustDomain: credentials.identity.trustDomain)
        self.onFailure = onFailure
    }

    /// A handler for one accepted connection. The client's identity is available from
    /// `MeshTLS.peerIdentity(of:)` once the handshake completes.
    public func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(
            context: context,
            customVerificationCallbackWithMetadata: MeshTLS.verificationCallback(
                verifier: verifier, role: .client, expecting: nil, onFailure: onFailure))
    }
}

/// The outbound (client) side of proxy-to-proxy mTLS.
public struct MeshTLSClient: Sendable {
    public let context: NIOSSLContext
    public let verifier: PeerVerifier
    private let onFailure: (@Sendable (PeerVerificationError) -> Void)?

    public init(
        credentials: WorkloadCredentials, trustBundle: TrustBundle, applicationProtocols: [String],
        onFailure: (@Sendable (PeerVerificationError) -> Void)? = nil
    ) throws {
        self.context = try NIOSSLContext(configuration: MeshTLS.clientConfiguration(
            credentials: credentials, trustBundle: trustBundle, applicationProtocols: applicationProtocols))
        self.verifier = PeerVerifier(trustBundle: trustBundle, trustDomain: credentials.identity.trustDomain)
        self.onFailure = onFailure
    }

    /// A handler for one outgoing connection to an endpoint that must be `expected` (from the
    /// config's endpoint identity). Any other identity fails the handshake, so a proxy holding
    /// another service's certificate cannot receive traffic meant for `expected`. Pass nil only
    /// where any identity of the trust domain is acceptable.
    public func makeHandler(expecting expected: SPIFFEID?) throws -> NIOSSLClientHandler {
        try makeHandler(expecting: expected, connectionFailure: nil)
    }

    /// As `makeHandler(expecting:)`, and also tells `connectionFailure` why this one
    /// connection's server was refused (so the request it carries can say so). It is called
    /// off the event loop, before the handshake fails.
    public func makeHandler(
        expecting expected: SPIFFEID?, connectionFailure: (@Sendable (PeerVerificationError) -> Void)?
    ) throws -> NIOSSLClientHandler {
        let shared = onFailure
        let report: (@Sendable (PeerVerificationError) -> Void)?
        if let connectionFailure {
            report = { error in
                shared?(error)
                connectionFailure(error)
            }
        } else {
            report = shared
        }
        return try NIOSSLClientHandler(
            context: context, serverHostname: nil,
            customVerificationCallbackWithMetadata: MeshTLS.verificationCallback(
                verifier: verifier, role: .server, expecting: expected, onFailure: report))
    }
}
