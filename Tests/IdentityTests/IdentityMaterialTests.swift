import Foundation
import Identity
import Testing

/// Static-mode rotation as the proxy will do it: re-read the files, compare, swap.
@Suite struct IdentityMaterialTests {
    @Test func reloadSeesRenewalsAndBundleChangesAndRefusesAHalfRotatedPair() throws {
        let directory = try Fixture.temporaryDirectory("material")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cert = directory + "/web.pem", key = directory + "/web.key", bundle = directory + "/ca.pem"
        let authority = try CertificateAuthority.create(trustDomain: "cluster.local")
        try authority.trustBundle.write(file: bundle)
        let first = try Fixture.credentials("web", from: authority)
        try first.write(certificateFile: cert, keyFile: key)

        let loaded = try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle)
        #expect(loaded == IdentityMaterial(credentials: first, trustBundle: authority.trustBundle))
        // Unchanged files: equal material, nothing to rebuild.
        #expect(try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle) == loaded)

        // Renewal: a new key and certificate for the same identity.
        let second = try Fixture.credentials("web", from: authority)
        try second.write(certificateFile: cert, keyFile: key)
        let renewed = try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle)
        #expect(renewed != loaded)
        #expect(renewed.credentials == second)
        #expect(renewed.credentials.identity == Fixture.id("web"))

        // Anchor rotation: a second root appears in the bundle without anything else changing.
        let next = try CertificateAuthority.create(trustDomain: "cluster.local")
        try authority.trustBundle.adding(next.certificate).write(file: bundle)
        let widened = try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle)
        #expect(widened.trustBundle.roots == [authority.certificate, next.certificate])
        #expect(widened.credentials == second)

        // Mid-rotation: the new key is in place but the certificate is still the old one.
        let third = try Fixture.credentials("web", from: next)
        try third.privateKey.pemRepresentation.write(toFile: key, atomically: true, encoding: .utf8)
        #expect(throws: IdentityError.keyMismatch("the leaf certificate")) {
            try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle)
        }
        try third.write(certificateFile: cert, keyFile: key)
        #expect(try IdentityMaterial.load(certificateFile: cert, keyFile: key, bundleFile: bundle).credentials == third)
    }
}
