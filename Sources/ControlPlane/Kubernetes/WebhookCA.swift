import Foundation
import Kubernetes

/// Fills the chart's webhook configurations with the trust anchor as their `caBundle`, so
/// the API server trusts the control plane's serving certificate without anyone copying a
/// CA by hand. A configuration that is not there (no chart) or already right is left alone.
enum WebhookCA {
    static let configurations = [
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/eino-inject",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/eino-validate",
    ]

    static func install(client: KubernetesClient, pem: String, log: @Sendable (String) -> Void) async {
        let bundle = JSONValue.string(Data(pem.utf8).base64EncodedString())
        for path in configurations {
            do {
                let data = try await client.send(.GET, path)
                guard case .object(var object) = try JSONDecoder().decode(JSONValue.self, from: data),
                      case .array(let webhooks)? = object["webhooks"] else { continue }
                let updated = webhooks.map { webhook -> JSONValue in
                    guard case .object(var fields) = webhook, case .object(var client)? = fields["clientConfig"] else { return webhook }
                    client["caBundle"] = bundle
                    fields["clientConfig"] = .object(client)
                    return .object(fields)
                }
                guard updated != webhooks else { continue }
                object["webhooks"] = .array(updated)
                _ = try await client.send(.PUT, path, body: JSONValue.object(object).data())
            } catch let error as KubernetesClient.APIError where error.status == 404 {
                continue
            } catch {
                log("cannot set the caBundle of \(path): \(error)")
            }
        }
    }
}
