import Foundation
import Identity
import Kubernetes

/// The issuer and the admin token in Kubernetes Secrets of the mesh's namespace, so any
/// replica can serve: the first to start creates them, and a replica that loses the race
/// to create (409) reads what the winner wrote. The trust anchor is also published as the
/// ConfigMap `eino-trust-anchor` (`ca.pem`), for proxies to mount.
struct MeshSecrets {
    static let issuerSecret = "eino-issuer"
    static let adminSecret = "eino-admin-token"
    static let trustAnchorConfigMap = "eino-trust-anchor"

    let client: KubernetesClient
    let namespace: String

    struct Unusable: Error, CustomStringConvertible {
        var description: String
    }

    func authority(trustDomain: String) async throws -> CertificateAuthority {
        let secret = try await secret(Self.issuerSecret) {
            let created = try CertificateAuthority.create(trustDomain: trustDomain)
            let (certificate, key) = try created.pem()
            return ["ca.pem": Data(certificate.utf8), "ca.key": Data(key.utf8)]
        }
        let source = "Secret \(namespace)/\(Self.issuerSecret)"
        guard let certificate = secret.value("ca.pem"), let key = secret.value("ca.key") else {
            throw Unusable(description: "\(source) lacks ca.pem or ca.key")
        }
        let authority = try CertificateAuthority.load(
            certificatePEM: String(decoding: certificate, as: UTF8.self), keyPEM: String(decoding: key, as: UTF8.self),
            certificateSource: "\(source) ca.pem", keySource: "\(source) ca.key")
        try await publishTrustAnchor(String(decoding: certificate, as: UTF8.self))
        return authority
    }

    func adminToken() async throws -> String {
        let secret = try await secret(Self.adminSecret) { ["token": Data(Secrets.newToken().utf8)] }
        guard let token = secret.value("token") else { throw Unusable(description: "Secret \(namespace)/\(Self.adminSecret) lacks token") }
        return String(decoding: token, as: UTF8.self)
    }

    private func secret(_ name: String, creating make: () throws -> [String: Data]) async throws -> Secret {
        let path = "/api/v1/namespaces/\(namespace)/secrets"
        do {
            return try await client.get("\(path)/\(name)", as: Secret.self)
        } catch let error as KubernetesClient.APIError where error.status == 404 {
            let labels = ["app.kubernetes.io/part-of": "eino"]
            let fresh = Secret(metadata: .init(name: name, namespace: namespace, labels: labels), type: "Opaque", data: try make())
            do {
                return try await client.create(path, fresh, as: Secret.self)
            } catch let error as KubernetesClient.APIError where error.status == 409 {
                return try await client.get("\(path)/\(name)", as: Secret.self)
            }
        }
    }

    private func publishTrustAnchor(_ pem: String) async throws {
        let path = "/api/v1/namespaces/\(namespace)/configmaps"
        let object = JSONValue.object([
            "apiVersion": .string("v1"), "kind": .string("ConfigMap"),
            "metadata": .object(["name": .string(Self.trustAnchorConfigMap), "namespace": .string(namespace),
                                 "labels": .object(["app.kubernetes.io/part-of": .string("eino")])]),
            "data": .object(["ca.pem": .string(pem)]),
        ])
        do {
            _ = try await client.send(.POST, path, body: object.data())
        } catch let error as KubernetesClient.APIError where error.status == 409 {
            return  // there already, from this CA's first start
        }
    }
}
