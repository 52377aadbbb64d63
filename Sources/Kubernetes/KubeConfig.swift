import Foundation
import Yams

/// Where the Kubernetes API is and how to authenticate to it: from a kubeconfig file
/// (its current context) or, in a pod, from the ServiceAccount mount.
public struct KubeConfig: Sendable {
    public var server: String
    /// PEM of the CA that signed the API server's certificate; nil: the system's roots.
    public var certificateAuthorityPEM: String?
    public var bearerToken: String?
    public var insecureSkipTLSVerify = false

    public init(server: String, certificateAuthorityPEM: String? = nil, bearerToken: String? = nil) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.bearerToken = bearerToken
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// The current context of a kubeconfig file: its cluster's `server` and CA
    /// (`certificate-authority-data` or `certificate-authority`), its user's `token` or
    /// `tokenFile`. Client certificates are not read: Eino's control plane authenticates
    /// with a ServiceAccount token, in a cluster and in tests alike.
    public static func load(path: String) throws -> KubeConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw Failure("cannot read kubeconfig \(path)")
        }
        guard let root = try Yams.load(yaml: text) as? [String: Any] else { throw Failure("\(path): not a kubeconfig") }
        func named(_ list: String, _ name: String?, _ key: String) -> [String: Any]? {
            let entries = root[list] as? [[String: Any]] ?? []
            let entry = name.map { wanted in entries.first { $0["name"] as? String == wanted } } ?? entries.first
            return entry?[key] as? [String: Any]
        }
        let contextName = root["current-context"] as? String
        let context = named("contexts", contextName, "context")
        guard let cluster = named("clusters", context?["cluster"] as? String, "cluster"), let server = cluster["server"] as? String else {
            throw Failure("\(path): the current context names no cluster with a server")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func relative(_ file: String) -> String { file.hasPrefix("/") ? file : base.appendingPathComponent(file).path }
        var config = KubeConfig(server: server)
        if let encoded = cluster["certificate-authority-data"] as? String {
            guard let decoded = Data(base64Encoded: encoded) else { throw Failure("\(path): certificate-authority-data is not base64") }
            config.certificateAuthorityPEM = String(decoding: decoded, as: UTF8.self)
        } else if let file = cluster["certificate-authority"] as? String {
            config.certificateAuthorityPEM = try readText(relative(file))
        }
        config.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"] as? Bool ?? false
        let user = named("users", context?["user"] as? String, "user")
        if let token = user?["token"] as? String {
            config.bearerToken = token
        } else if let file = user?["tokenFile"] as? String {
            config.bearerToken = try readText(relative(file)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return config
    }

    /// In a pod: the API server from the environment Kubernetes sets, the ServiceAccount
    /// token and CA from their mount.
    public static func inCluster(mount: String = "/var/run/secrets/kubernetes.io/serviceaccount") throws -> KubeConfig {
        guard let host = getenv("KUBERNETES_SERVICE_HOST").map({ String(cString: $0) }),
              let port = getenv("KUBERNETES_SERVICE_PORT").map({ String(cString: $0) })
        else { throw Failure("not in a pod (KUBERNETES_SERVICE_HOST is not set); give --kubeconfig") }
        let server = host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        return KubeConfig(server: server, certificateAuthorityPEM: try readText("\(mount)/ca.crt"),
                          bearerToken: try readText("\(mount)/token").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }
}
