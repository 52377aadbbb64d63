import Kubernetes
import MeshConfig

/// Kubernetes mode: a proxy proves who it is with a projected ServiceAccount token for the
/// identity audience, checked by a TokenReview. A token for another audience, an expired
/// one or one whose ServiceAccount is gone comes back unauthenticated, with the API
/// server's reason, which the proxy logs.
struct ServiceAccountJoin: JoinAuthenticator {
    let client: KubernetesClient

    func authenticate(_ request: ControlWire.JoinRequest) async -> Result<ServiceKey, JoinRefusal> {
        guard let token = request.identityToken else {
            return .failure(JoinRefusal(message: "a ServiceAccount token is required (--identity-token-file): this control plane runs on Kubernetes"))
        }
        let status: TokenReview.Status
        do {
            status = try await client.reviewToken(token, audiences: [ControlWire.identityAudience])
        } catch {
            return .failure(JoinRefusal(message: "cannot check the ServiceAccount token with the Kubernetes API: \(error)"))
        }
        guard status.authenticated == true, let username = status.user?.username else {
            return .failure(JoinRefusal(message: "ServiceAccount token refused: \(status.error ?? "not authenticated")"))
        }
        let parts = username.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount" else {
            return .failure(JoinRefusal(message: "the token is not a ServiceAccount's (it authenticates \(username))"))
        }
        return .success(ServiceKey(name: String(parts[3]), namespace: String(parts[2])))
    }
}
