import Foundation
import Identity
import Testing
import X509

/// Peer verification with swift-certificates' Verifier: chains to the bundle, time validity,
/// Eino's leaf rules and the expected identity.
@Suite struct PeerVerifierTests {
    let authority = try! CertificateAuthority.create(trustDomain: "cluster.local")
    var verifier: PeerVerifier { PeerVerifier(trustBundle: authority.trustBundle, trustDomain: "cluster.local") }

    @Test func acceptsAChainFromTheBundleAndNamesThePeer() async throws {
        let web = try Fixture.credentials("web", from: authority)
        let peer = try await verifier.verify(web.certificateChain, as: .client).get()
        #expect(peer.identity == Fixture.id("web"))
        #expect(peer.chain == [web.leaf, authority.certificate])
        let asServer = try await verifier.verify(web.certificateChain, as: .server, expecting: Fixture.id("web")).get()
        #expect(asServer.identity == Fixture.id("web"))
    }

    @Test func rejectsAForeignCA() async throws {
        let foreign = try CertificateAuthority.create(trustDomain: "cluster.local")
        let web = try Fixture.credentials("web", from: foreign)
        let error = try #require(await verifier.verify(web.certificateChain, as: .client).failure)
        #expect(error.kind == .untrusted)
        #expect(error.description == "peer spiffe://cluster.local/ns/default/sa/web: certificate does not chain to a root in the trust bundle")
        // Sending the foreign root along does not help: only the bundle anchors trust.
        let withRoot = await verifier.verify(web.certificateChain + [foreign.certificate], as: .client)
        #expect(withRoot.failure?.kind == .untrusted)
    }

    @Test func rejectsAnExpiredCertificate() async throws {
        let now = Date()
        let expired = try Fixture.credentials(
            "web", from: authority, notBefore: now.addingTimeInterval(-7200), notAfter: now.addingTimeInterval(-3600))
        let error = try #require(await verifier.verify(expired.certificateChain, as: .client).failure)
        #expect(error.kind == .expired)
        #expect(error.description.hasPrefix("peer spiffe://cluster.local/ns/default/sa/web: certificate expired at "))
    }

    @Test func rejectsANotYetValidCertificate() async throws {
        let now = Date()
        let early = try Fixture.credentials(
            "web", from: authority, notBefore: now.addingTimeInterval(3600), notAfter: now.addingTimeInterval(7200))
        let error = try #require(await verifier.verify(early.certificateChain, as: .client).failure)
        #expect(error.kind == .notYetValid)
    }

    @Test func bundleWithTwoRootsAcceptsCertificatesFromBoth() async throws {
        let next = try CertificateAuthority.create(trustDomain: "cluster.local")
        let both = PeerVerifier(trustBundle: authority.trustBundle.adding(next.certificate), trustDomain: "cluster.local")
        let old = try Fixture.credentials("web", from: authority)
        let new = try Fixture.credentials("api", from: next)
        #expect(try await both.verify(old.certificateChain, as: .client).get().chain.last == authority.certificate)
        #expect(try await both.verify(new.certificateChain, as: .client).get().chain.last == next.certificate)
        // Before the new root is added, its certificates are refused; after the old root is
        // removed, the old ones are.
        #expect(await verifier.verify(new.certificateChain, as: .client).failure?.kind == .untrusted)
        let onlyNext = PeerVerifier(trustBundle: both.trustBundle.removing(authority.certificate), trustDomain: "cluster.local")
        #expect(await onlyNext.verify(old.certificateChain, as: .client).failure?.kind == .untrusted)
        #expect(try await onlyNext.verify(new.certificateChain, as: .client).get().identity == Fixture.id("api"))
    }

    @Test func rejectsAnUnexpectedIdentity() async throws {
        let db = try Fixture.credentials("db", from: authority)
        let error = try #require(await verifier.verify(db.certificateChain, as: .server, expecting: Fixture.id("web")).failure)
        #expect(error.kind == .identityMismatch(expected: Fixture.id("web"), actual: Fixture.id("db")))
        #expect(error.description == "peer is spiffe://cluster.local/ns/default/sa/db, expected spiffe://cluster.local/ns/default/sa/web")
    }

    @Test func rejectsAnotherTrustDomain() async throws {
        let other = try CertificateAuthority.create(trustDomain: "example.org")
        let web = try Fixture.credentials("web", from: other)
        let bundle = authority.trustBundle.adding(other.certificate)
        let error = try #require(await PeerVerifier(trustBundle: bundle, trustDomain: "cluster.local")
            .verify(web.certificateChain, as: .client).failure)
        #expect(error.kind == .badIdentity)
        #expect(error.description == "peer spiffe://example.org/ns/default/sa/web is outside trust domain cluster.local")
    }

    @Test func rejectsNothingPresented() async {
        #expect(await verifier.verify([], as: .client).failure?.kind == .noCertificate)
    }

    @Test func rejectsTheRootPresentedAsALeaf() async {
        // A CA certificate has no workload identity, even though it is in the bundle.
        let error = await verifier.verify([authority.certificate], as: .client).failure
        #expect(error?.kind == .badIdentity)
    }

    @Test func bundleRoundTripsThroughPEMWithSeveralRoots() throws {
        let next = try CertificateAuthority.create(trustDomain: "cluster.local")
        let bundle = authority.trustBundle.adding(next.certificate).adding(authority.certificate)
        #expect(bundle.roots == [authority.certificate, next.certificate])
        let directory = try Fixture.temporaryDirectory("bundle")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try bundle.write(file: directory + "/bundle.pem")
        #expect(try TrustBundle.load(file: directory + "/bundle.pem") == bundle)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
