import Crypto
import Foundation
import SwiftASN1
import X509

/// A root certificate authority for one trust domain (ECDSA P-256).
///
/// The CA signs workload certificates from CSRs; it never sees a workload's private key.
/// It decides the identity itself (from whatever authenticated the request: a join token in
/// control-plane mode, the operator in static mode) and only checks that the CSR does not ask
/// for a different one, so a workload cannot talk its way into another name.
public struct CertificateAuthority: Sendable {
    /// File names inside a CA directory (CLI.md: `DIR/ca.pem`, `DIR/ca.key`).
    public static let certificateFileName = "ca.pem"
    public static let keyFileName = "ca.key"

    /// Default lifetime of a root: ten years. Roots are rotated by adding a new one to the
    /// trust bundle long before the old one expires, not by letting them lapse.
    public static let defaultRootLifetime: TimeInterval = 10 * 365 * 24 * 3600
    /// Default lifetime of a workload certificate: 24 hours, renewed at 70 % (see `Renewal`).
    public static let defaultLeafLifetime: TimeInterval = 24 * 3600

    /// The self-signed root certificate: what goes into trust bundles.
    public let certificate: Certificate
    /// The trust domain this CA issues for, read from the root's own URI SAN `spiffe://DOMAIN`.
    public let trustDomain: String
    private let privateKey: P256.Signing.PrivateKey

    /// Creates a fresh root with a new key. The root carries its trust domain as a URI SAN
    /// so that a CA loaded from disk knows which identities it may issue without a side file.
    public static func create(
        trustDomain: String, lifetime: TimeInterval = defaultRootLifetime, now: Date = Date()
    ) throws -> CertificateAuthority {
        if let problem = SPIFFEID.trustDomainProblem(trustDomain) {
            throw IdentityError.badCertificate("cannot create a CA: \(problem)")
        }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let name = try DistinguishedName {
            OrganizationName("Eino")
            CommonName("Eino root CA \(trustDomain)".prefix(64).description)
        }
        let extensions = try Certificate.Extensions {
            // Path length 1 leaves room for an intermediate per control plane later.
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
            SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://\(trustDomain)")])
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(lifetime),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Pairs an existing root with its key, checking that they belong together and that the
    /// certificate really is a CA for exactly one trust domain.
    public init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) throws {
        guard certificate.publicKey == Certificate.PublicKey(privateKey.publicKey) else {
            throw IdentityError.keyMismatch("the CA certificate")
        }
        guard case .isCertificateAuthority = try certificate.extensions.basicConstraints else {
            throw IdentityError.badCertificate("the CA certificate is not a CA (basicConstraints CA:TRUE missing)")
        }
        let domains = try (certificate.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()).compactMap { name -> String? in
            guard case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix("spiffe://") else { return nil }
            return String(uri.dropFirst("spiffe://".count))
        }
        guard domains.count == 1, let domain = domains.first, SPIFFEID.trustDomainProblem(domain) == nil else {
            throw IdentityError.badCertificate("the CA certificate must name its trust domain as one URI SAN spiffe://DOMAIN")
        }
        self.certificate = certificate
        self.privateKey = privateKey
        self.trustDomain = domain
    }

    /// Loads `DIR/ca.pem` and `DIR/ca.key`.
    public static func load(fromDirectory directory: String) throws -> CertificateAuthority {
        let certificatePath = directory + "/" + certificateFileName
        let keyPath = directory + "/" + keyFileName
        return try load(certificatePEM: FileStore.read(certificatePath), keyPEM: FileStore.read(keyPath),
                        certificateSource: certificatePath, keySource: keyPath)
    }

    /// Loads a CA from its PEM texts (a Kubernetes Secret's, say); the sources name them in errors.
    public static func load(certificatePEM: String, keyPEM: String, certificateSource: String, keySource: String) throws -> CertificateAuthority {
        let certificates = try PEM.certificates(in: certificatePEM, path: certificateSource)
        guard certificates.count == 1 else {
            throw IdentityError.badPEM(path: certificateSource, problem: "expected one CA certificate, found \(certificates.count)")
        }
        return try CertificateAuthority(certificate: certificates[0], privateKey: PEM.privateKey(in: keyPEM, path: keySource))
    }

    /// The certificate and the key as PEM, as `write(toDirectory:replace:)` writes them.
    public func pem() throws -> (certificate: String, key: String) {
        (try PEM.encode([certificate]), privateKey.pemRepresentation + "\n")
    }

    /// Writes `DIR/ca.key` (mode 0600 from creation) and `DIR/ca.pem` (0644), creating `DIR`
    /// (0700) if needed. Without `replace`, existing files are left alone and
    /// `IdentityError.alreadyExists` is thrown: replacing a root silently would cut every
    /// workload off from its peers.
    public func write(toDirectory directory: String, replace: Bool) throws {
        try FileStore.makeDirectory(directory)
        let certificatePath = directory + "/" + Self.certificateFileName
        let keyPath = directory + "/" + Self.keyFileName
        if !replace {
            for path in [certificatePath, keyPath] where FileManager.default.fileExists(atPath: path) {
                throw IdentityError.alreadyExists(path: path)
            }
        }
        let (certificateText, keyText) = try pem()
        try FileStore.write(keyText, to: keyPath, mode: FileStore.privateMode, replace: replace)
        try FileStore.write(certificateText, to: certificatePath, mode: FileStore.publicMode, replace: replace)
    }

    /// A bundle holding just this root.
    public var trustBundle: TrustBundle { TrustBundle(roots: [certificate]) }

    /// Issues a workload certificate valid from about now for `lifetime` seconds.
    ///
    /// `notBefore` is set slightly in the past — 5 % of the lifetime, at most one minute — so a
    /// peer whose clock lags a little does not reject a certificate that was just rotated in.
    ///
    /// `hostNames` (DNS names or IP addresses) are for servers reached by address rather than
    /// by SPIFFE ID — the control plane — and are added beside the SPIFFE ID. Workload
    /// certificates carry none, so no workload can pass a client's host-name check.
    public func issue(
        _ csr: CertificateSigningRequest, for identity: SPIFFEID, hostNames: [String] = [],
        lifetime: TimeInterval = defaultLeafLifetime, now: Date = Date()
    ) throws -> Certificate {
        guard lifetime > 0 else { throw IdentityError.badValidity("lifetime must be positive, got \(lifetime) s") }
        let backdate = min(60, lifetime * 0.05)
        return try issue(
            csr, for: identity, hostNames: hostNames,
            notBefore: now.addingTimeInterval(-backdate), notAfter: now.addingTimeInterval(lifetime))
    }

    /// Issues a workload certificate for an explicit validity window (clipped to the root's
    /// own expiry). Tests use it for certificates that are already expired or not yet valid.
    public func issue(
        _ csr: CertificateSigningRequest, for identity: SPIFFEID, hostNames: [String] = [], notBefore: Date, notAfter: Date
    ) throws -> Certificate {
        guard identity.trustDomain == trustDomain else {
            throw IdentityError.badCSR("this CA issues for trust domain \(trustDomain), not \(identity.trustDomain)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw IdentityError.badCSR("its signature does not verify with its own public key")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else {
            throw IdentityError.badCSR("the key must be ECDSA P-256")
        }
        if let requested = try csr.attributes.extensionRequest?.extensions.subjectAlternativeNames {
            let asked = Array(requested)
            guard asked == [.uniformResourceIdentifier(identity.description)] else {
                let names = asked.map { name -> String in
                    if case .uniformResourceIdentifier(let uri) = name { return "URI:\(uri)" }
                    return "\(name)"
                }
                throw IdentityError.badCSR("it asks for \(names.joined(separator: ", ")) but the identity is \(identity)")
            }
        }
        let end = min(notAfter, certificate.notValidAfter)
        guard end > notBefore else { throw IdentityError.badValidity("notAfter \(end) is not after notBefore \(notBefore)") }
        let authorityKeyID = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectKeyIdentifier(hash: csr.publicKey)
            AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
            // The subject is empty, so RFC 5280 §4.2.1.6 requires the SAN to be critical.
            Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)] + hostNames.map(Self.generalName)))
        }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: csr.publicKey,
            notValidBefore: notBefore, notValidAfter: end,
            issuer: certificate.subject, subject: DistinguishedName(),
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(privateKey))
    }

    /// An IP address SAN for literal addresses, a DNS name otherwise.
    private static func generalName(_ host: String) -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v4) { Array($0) })))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v6) { Array($0) })))
        }
        return .dnsName(host)
    }
}
