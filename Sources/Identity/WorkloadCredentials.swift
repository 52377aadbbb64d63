import Crypto
import Foundation
import X509

/// A workload's private key, created where the workload runs and never sent anywhere: only
/// the CSR made from it travels to the CA.
public struct WorkloadKey: Sendable {
    public let privateKey: P256.Signing.PrivateKey

    /// A new random P-256 key.
    public init() { self.privateKey = P256.Signing.PrivateKey() }

    public init(_ privateKey: P256.Signing.PrivateKey) { self.privateKey = privateKey }

    /// A CSR signed with this key (proof of possession) that asks for `identity` as its only
    /// URI SAN. The CA still decides the identity; the request lets it refuse a mismatch.
    public func certificateSigningRequest(for identity: SPIFFEID) throws -> CertificateSigningRequest {
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)])
        }
        let attributes = try CertificateSigningRequest.Attributes(
            [CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions))])
        return try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(privateKey),
            attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
    }
}

/// What a workload presents in TLS: its certificate chain (leaf first, then any
/// intermediates; never the root) and the matching private key.
public struct WorkloadCredentials: Sendable, Equatable {
    public let certificateChain: [Certificate]
    public let privateKey: P256.Signing.PrivateKey
    /// The SPIFFE ID in the leaf's URI SAN.
    public let identity: SPIFFEID

    /// Checks that the key belongs to the leaf and that the leaf names exactly one identity,
    /// so a mismatched pair (e.g. files caught mid-rotation) is refused before TLS uses it.
    public init(certificateChain: [Certificate], privateKey: P256.Signing.PrivateKey) throws {
        guard let leaf = certificateChain.first else { throw IdentityError.badCertificate("empty certificate chain") }
        guard leaf.publicKey == Certificate.PublicKey(privateKey.publicKey) else {
            throw IdentityError.keyMismatch("the leaf certificate")
        }
        self.identity = try SPIFFEID(certificate: leaf)
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    public var leaf: Certificate { certificateChain[0] }

    /// When to ask for the next certificate: 70 % into this one's lifetime.
    public var renewalTime: Date { Renewal.renewalTime(for: leaf) }

    /// Same chain and same key: what a reload compares to decide whether to rebuild TLS.
    public static func == (lhs: WorkloadCredentials, rhs: WorkloadCredentials) -> Bool {
        lhs.certificateChain == rhs.certificateChain && lhs.privateKey.rawRepresentation == rhs.privateKey.rawRepresentation
    }

    /// Loads `NAME.pem` (leaf, then chain) and `NAME.key` as `eino identity issue` writes them.
    public static func load(certificateFile: String, keyFile: String) throws -> WorkloadCredentials {
        let chain = try PEM.certificates(in: FileStore.read(certificateFile), path: certificateFile)
        let key = try PEM.privateKey(in: FileStore.read(keyFile), path: keyFile)
        return try WorkloadCredentials(certificateChain: chain, privateKey: key)
    }

    /// Writes the key (0600 from creation) and then the chain (0644), each replaced
    /// atomically so a proxy watching them never reads half a file.
    public func write(certificateFile: String, keyFile: String) throws {
        try FileStore.write(privateKey.pemRepresentation + "\n", to: keyFile, mode: FileStore.privateMode, replace: true)
        try FileStore.write(PEM.encode(certificateChain), to: certificateFile, mode: FileStore.publicMode, replace: true)
    }
}

/// Renewal timing. Certificates are renewed at 70 % of their lifetime: late enough not to
/// churn, early enough that 30 % of the lifetime (7 h 12 min for 24 h) is left to retry if
/// the CA is away.
public enum Renewal {
    public static let fraction = 0.7

    public static func renewalTime(notBefore: Date, notAfter: Date) -> Date {
        notBefore.addingTimeInterval(notAfter.timeIntervalSince(notBefore) * fraction)
    }

    public static func renewalTime(for certificate: Certificate) -> Date {
        renewalTime(notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter)
    }
}

extension SPIFFEID {
    /// The identity a certificate names: its SAN must hold exactly one URI and it must be an
    /// Eino SPIFFE ID. More than one URI is refused, because a peer could then claim either.
    public init(certificate: Certificate) throws {
        let names = try certificate.extensions.subjectAlternativeNames.map(Array.init) ?? []
        let uris = names.compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1 else {
            throw IdentityError.badCertificate("certificate must carry exactly one URI SAN, found \(uris.count)")
        }
        try self.init(parsing: uris[0])
    }
}
