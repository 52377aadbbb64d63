import Foundation
import Identity
import X509

/// Small builders shared by the identity tests.
enum Fixture {
    static func id(_ name: String, namespace: String = "default", trustDomain: String = "cluster.local") -> SPIFFEID {
        try! SPIFFEID(trustDomain: trustDomain, namespace: namespace, serviceAccount: name)
    }

    /// A workload's credentials, made the real way: key and CSR on the workload side, the
    /// certificate from the CA.
    static func credentials(
        _ name: String, from authority: CertificateAuthority, lifetime: TimeInterval = CertificateAuthority.defaultLeafLifetime
    ) throws -> WorkloadCredentials {
        let identity = id(name, trustDomain: authority.trustDomain)
        let key = WorkloadKey()
        let leaf = try authority.issue(key.certificateSigningRequest(for: identity), for: identity, lifetime: lifetime)
        return try WorkloadCredentials(certificateChain: [leaf], privateKey: key.privateKey)
    }

    /// Credentials with an explicit validity window (for expired / not-yet-valid cases).
    static func credentials(
        _ name: String, from authority: CertificateAuthority, notBefore: Date, notAfter: Date
    ) throws -> WorkloadCredentials {
        let identity = id(name, trustDomain: authority.trustDomain)
        let key = WorkloadKey()
        let leaf = try authority.issue(key.certificateSigningRequest(for: identity), for: identity, notBefore: notBefore, notAfter: notAfter)
        return try WorkloadCredentials(certificateChain: [leaf], privateKey: key.privateKey)
    }

    static func temporaryDirectory(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("eino-\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}
