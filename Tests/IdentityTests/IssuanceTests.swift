import Crypto
import Foundation
import Identity
import SwiftASN1
import Testing
import X509

/// The CA: what it puts into workload certificates, what it refuses, and its files.
@Suite struct IssuanceTests {
    let authority = try! CertificateAuthority.create(trustDomain: "cluster.local")

    @Test func leafFromCSRHasExactlyOneURISANAndTheMeshExtensions() throws {
        let identity = Fixture.id("web")
        let key = WorkloadKey()
        let csr = try key.certificateSigningRequest(for: identity)
        let now = Date()
        let leaf = try authority.issue(csr, for: identity, now: now)

        let sans = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(Array(sans) == [.uniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/web")])
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try leaf.extensions.keyUsage == KeyUsage(digitalSignature: true))
        #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth, .clientAuth]))
        #expect(try leaf.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: leaf.publicKey))
        let caKeyID = try #require(try authority.certificate.extensions.subjectKeyIdentifier).keyIdentifier
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == caKeyID)
        // The private key never left the workload: the certificate holds the CSR's public key.
        #expect(leaf.publicKey == Certificate.PublicKey(key.privateKey.publicKey))
        #expect(leaf.issuer == authority.certificate.subject)
        #expect(leaf.subject == DistinguishedName())
        #expect(leaf.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(authority.certificate.publicKey.isValidSignature(leaf.signature, for: leaf))
        // Default lifetime 24 h from now; notBefore backdated one minute for clock skew.
        #expect(abs(leaf.notValidAfter.timeIntervalSince(now) - 24 * 3600) < 1)
        #expect(abs(now.timeIntervalSince(leaf.notValidBefore) - 60) < 1)
        #expect(try SPIFFEID(certificate: leaf) == identity)
    }

    @Test func rootIsACAForItsTrustDomain() throws {
        let root = authority.certificate
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 1))
        #expect(try root.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(Array(try #require(try root.extensions.subjectAlternativeNames)) == [.uniformResourceIdentifier("spiffe://cluster.local")])
        #expect(root.issuer == root.subject)
        #expect(root.publicKey.isValidSignature(root.signature, for: root))
        #expect(authority.trustDomain == "cluster.local")
    }

    @Test func csrAskingForAnotherIdentityIsRefused() throws {
        let csr = try WorkloadKey().certificateSigningRequest(for: Fixture.id("db"))
        #expect(throws: IdentityError.badCSR(
            "it asks for URI:spiffe://cluster.local/ns/default/sa/db but the identity is spiffe://cluster.local/ns/default/sa/web"
        )) {
            try authority.issue(csr, for: Fixture.id("web"))
        }
    }

    @Test func identityOutsideTheTrustDomainIsRefused() throws {
        let other = Fixture.id("web", trustDomain: "example.org")
        let csr = try WorkloadKey().certificateSigningRequest(for: other)
        #expect(throws: IdentityError.badCSR("this CA issues for trust domain cluster.local, not example.org")) {
            try authority.issue(csr, for: other)
        }
    }

    @Test func csrWithBadSignatureIsRefused() throws {
        let identity = Fixture.id("web")
        let good = try WorkloadKey().certificateSigningRequest(for: identity)
        // Same request body, signature from another key: no proof of possession.
        let forged = try CertificateSigningRequest(
            version: good.version, subject: good.subject, publicKey: good.publicKey, attributes: good.attributes,
            signatureAlgorithm: good.signatureAlgorithm,
            signature: try WorkloadKey().certificateSigningRequest(for: identity).signature)
        #expect(throws: IdentityError.badCSR("its signature does not verify with its own public key")) {
            try authority.issue(forged, for: identity)
        }
    }

    @Test func leafLifetimeIsClippedToTheRoot() throws {
        let shortRoot = try CertificateAuthority.create(trustDomain: "cluster.local", lifetime: 3600)
        let leaf = try Fixture.credentials("web", from: shortRoot, lifetime: 24 * 3600).leaf
        #expect(leaf.notValidAfter == shortRoot.certificate.notValidAfter)
    }

    @Test func renewalIsAtSeventyPercentOfTheLifetime() throws {
        let notBefore = Date(timeIntervalSince1970: 1_800_000_000)
        let notAfter = notBefore.addingTimeInterval(24 * 3600)
        #expect(Renewal.renewalTime(notBefore: notBefore, notAfter: notAfter) == notBefore.addingTimeInterval(60_480))
        let credentials = try Fixture.credentials("web", from: authority, notBefore: notBefore, notAfter: notAfter)
        #expect(credentials.renewalTime == Date(timeIntervalSince1970: 1_800_060_480))
        let leaf = try Fixture.credentials("api", from: authority, lifetime: 1000).leaf
        let expected = leaf.notValidBefore.addingTimeInterval(0.7 * leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore))
        #expect(Renewal.renewalTime(for: leaf) == expected)
    }

    @Test func caRoundTripsThroughItsDirectoryWithAPrivateKeyFile() throws {
        let directory = try Fixture.temporaryDirectory("ca")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try authority.write(toDirectory: directory, replace: false)
        #expect(try Fixture.mode(directory + "/ca.key") == 0o600)
        #expect(try Fixture.mode(directory + "/ca.pem") == 0o644)
        let loaded = try CertificateAuthority.load(fromDirectory: directory)
        #expect(loaded.certificate == authority.certificate)
        #expect(loaded.trustDomain == "cluster.local")
        // The loaded key signs certificates that chain to the original root.
        let leaf = try Fixture.credentials("web", from: loaded).leaf
        #expect(authority.certificate.publicKey.isValidSignature(leaf.signature, for: leaf))
        // Without replace, neither file is touched.
        let before = try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8)
        let other = try CertificateAuthority.create(trustDomain: "cluster.local")
        #expect(throws: IdentityError.alreadyExists(path: directory + "/ca.pem")) {
            try other.write(toDirectory: directory, replace: false)
        }
        #expect(try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8) == before)
        try other.write(toDirectory: directory, replace: true)
        #expect(try CertificateAuthority.load(fromDirectory: directory).certificate == other.certificate)
        #expect(try Fixture.mode(directory + "/ca.key") == 0o600)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["ca.key", "ca.pem"])
    }

    @Test func mismatchedKeyIsRefusedOnLoad() throws {
        let directory = try Fixture.temporaryDirectory("ca-mismatch")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try authority.write(toDirectory: directory, replace: false)
        try P256.Signing.PrivateKey().pemRepresentation.write(toFile: directory + "/ca.key", atomically: true, encoding: .utf8)
        #expect(throws: IdentityError.keyMismatch("the CA certificate")) {
            try CertificateAuthority.load(fromDirectory: directory)
        }
    }

    @Test func workloadCredentialsRoundTripThroughFiles() throws {
        let directory = try Fixture.temporaryDirectory("creds")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let credentials = try Fixture.credentials("web", from: authority)
        try credentials.write(certificateFile: directory + "/web.pem", keyFile: directory + "/web.key")
        #expect(try Fixture.mode(directory + "/web.key") == 0o600)
        let loaded = try WorkloadCredentials.load(certificateFile: directory + "/web.pem", keyFile: directory + "/web.key")
        #expect(loaded.certificateChain == credentials.certificateChain)
        #expect(loaded.identity == Fixture.id("web"))
        // A key from another issue must not pair with this certificate.
        let other = try Fixture.credentials("web", from: authority)
        #expect(throws: IdentityError.keyMismatch("the leaf certificate")) {
            try WorkloadCredentials(certificateChain: credentials.certificateChain, privateKey: other.privateKey)
        }
    }

    /// Prints how many certificates the CA signs per second (CSRs made beforehand); not asserted.
    @Test func issuanceRate() throws {
        let identity = Fixture.id("web")
        let csrs = try (0..<1000).map { _ in try WorkloadKey().certificateSigningRequest(for: identity) }
        let start = ContinuousClock.now
        for csr in csrs { _ = try authority.issue(csr, for: identity) }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("identity: issued 1000 certificates from CSRs in \(String(format: "%.3f", seconds)) s = \(Int(1000 / seconds)) certificates/s")
    }
}
