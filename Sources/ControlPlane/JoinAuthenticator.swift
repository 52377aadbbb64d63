import MeshConfig

/// Who a joining proxy is, from the credential it presents: a join token on bare hosts, a
/// projected ServiceAccount token in Kubernetes. The answer, never a name the proxy asks
/// for, is the identity its certificate gets.
protocol JoinAuthenticator: Sendable {
    /// The ServiceAccount (service) and namespace the credential proves, or why it proves none.
    func authenticate(_ request: ControlWire.JoinRequest) async -> Result<ServiceKey, JoinRefusal>
}

/// A refused join, in the words the proxy logs.
struct JoinRefusal: Error {
    var message: String
}

extension JoinTokens: JoinAuthenticator {
    func authenticate(_ request: ControlWire.JoinRequest) async -> Result<ServiceKey, JoinRefusal> {
        guard let token = request.token else {
            return .failure(JoinRefusal(message: "a join token is required (this control plane keeps its own store, not Kubernetes)"))
        }
        do {
            let owner = try redeem(token)
            return .success(ServiceKey(name: owner.service, namespace: owner.namespace))
        } catch let refusal as Refusal {
            let reason = switch refusal {
            case .unknown: "join token not recognised"
            case .used: "join token already used"
            case .expired: "join token expired"
            }
            return .failure(JoinRefusal(message: reason))
        } catch {
            return .failure(JoinRefusal(message: "join token not redeemed: \(error)"))
        }
    }
}
