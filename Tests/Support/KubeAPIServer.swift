import Foundation

/// A real kube-apiserver with etcd on loopback: built once by Tests/Scripts/kube-apiserver.sh
/// into a cache outside the clone, started here with ServiceAccount signing keys (so the
/// TokenRequest and TokenReview APIs work), RBAC authorization and a static admin token.
/// Nothing else of a cluster runs: tests create what a controller or kubelet would.
public final class KubeAPIServer: @unchecked Sendable {
    public let directory: URL
    /// `https://127.0.0.1:PORT`.
    public let url: String
    /// In group `system:masters`: what a cluster administrator (and a test) uses.
    public let adminToken = "admin-" + UUID().uuidString.lowercased()
    private let etcd: ServerProcess
    private var apiserver: ServerProcess?
    private let arguments: [String]
    private let binary: URL

    public init() throws {
        let build = try EinoProcess.run(URL(fileURLWithPath: "/bin/bash"), [
            EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts/kube-apiserver.sh").path, "build"])
        guard build.status == 0, let path = build.stdoutLines.last else {
            throw PollTimeout(description: "cannot build kube-apiserver: \(build.stderr)")
        }
        binary = URL(fileURLWithPath: path)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-kube-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let openssl = URL(fileURLWithPath: "/usr/bin/openssl")
        let key = directory.appendingPathComponent("sa.key").path, pub = directory.appendingPathComponent("sa.pub").path
        _ = try EinoProcess.run(openssl, ["genrsa", "-out", key, "2048"])
        _ = try EinoProcess.run(openssl, ["rsa", "-in", key, "-pubout", "-out", pub])
        try "\(adminToken),admin,admin,system:masters\n".write(
            to: directory.appendingPathComponent("tokens.csv"), atomically: true, encoding: .utf8)

        let (client, peer, secure) = (try Self.freePort(), try Self.freePort(), try Self.freePort())
        etcd = try ServerProcess(URL(fileURLWithPath: "/usr/bin/etcd"), [
            "--name", "eino-test", "--data-dir", directory.appendingPathComponent("etcd").path,
            "--listen-client-urls", "http://127.0.0.1:\(client)", "--advertise-client-urls", "http://127.0.0.1:\(client)",
            "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
            "--initial-cluster", "eino-test=http://127.0.0.1:\(peer)", "--log-level", "error",
        ])
        url = "https://127.0.0.1:\(secure)"
        arguments = [
            "--etcd-servers", "http://127.0.0.1:\(client)", "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", String(secure), "--insecure-port", "0", "--cert-dir", directory.appendingPathComponent("certs").path,
            "--token-auth-file", directory.appendingPathComponent("tokens.csv").path, "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", pub,
            "--service-account-signing-key-file", key, "--api-audiences", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.96.0.0/16", "--logtostderr", "--v", "0",
        ]
        try start()
    }

    /// Starts (or restarts) the API server on the same port and etcd, and waits until ready.
    public func start() throws {
        apiserver = try ServerProcess(binary, arguments)
        try poll(timeout: 90, "kube-apiserver /readyz (stderr: \(apiserver?.stderr.suffix(2000) ?? ""))") {
            (try? request("GET", "/readyz"))?.body == "ok" ? true : nil
        }
    }

    /// Stops the API server, as an outage; etcd and its data stay for `start()`. On SIGTERM
    /// with watches open it lingers, hence the kill after a short wait.
    public func stop() {
        apiserver?.terminate()
        apiserver = nil
    }

    /// One request with the admin token; `body` is JSON unless `contentType` says otherwise.
    @discardableResult
    public func request(_ method: String, _ path: String, body: String? = nil, contentType: String = "application/json",
                        token: String? = nil) throws -> (status: Int, body: String) {
        var arguments = ["-sk", "-X", method, "-H", "Authorization: Bearer \(token ?? adminToken)", "-w", "\n%{http_code}", url + path]
        if let body { arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", body] }
        let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), arguments)
        guard let newline = output.stdout.lastIndex(of: "\n"), let status = Int(output.stdout[output.stdout.index(after: newline)...]) else {
            throw PollTimeout(description: "curl \(method) \(path): \(output.stderr)")
        }
        return (status, String(output.stdout[..<newline]))
    }

    /// Creates every document of a YAML text (as `kubectl create -f` would); an object that
    /// exists already is left as it is.
    public func create(yaml: String, at collection: (String) -> String) throws {
        for document in yaml.components(separatedBy: "\n---\n") where document.contains("kind:") {
            let kind = document.split(separator: "\n").first { $0.hasPrefix("kind:") }.map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) } ?? ""
            let answer = try request("POST", collection(kind), body: document, contentType: "application/yaml")
            guard (200..<300).contains(answer.status) || answer.status == 409 else {
                throw PollTimeout(description: "creating a \(kind) failed (\(answer.status)): \(answer.body)")
            }
        }
    }

    /// A ServiceAccount token from the TokenRequest API, as a projected volume holds one.
    public func token(namespace: String, serviceAccount: String, audience: String, seconds: Int = 3600) throws -> String {
        let answer = try request("POST", "/api/v1/namespaces/\(namespace)/serviceaccounts/\(serviceAccount)/token",
                                 body: #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["\#(audience)"],"expirationSeconds":\#(seconds)}}"#)
        guard answer.status == 201, let data = answer.body.data(using: .utf8),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let token = (object["status"] as? [String: Any])?["token"] as? String
        else { throw PollTimeout(description: "TokenRequest for \(namespace)/\(serviceAccount) failed (\(answer.status)): \(answer.body)") }
        return token
    }

    /// A kubeconfig authenticating with `token`, trusting any server certificate (the test
    /// API server's is self-signed and made at start).
    public func kubeconfig(token: String, name: String) throws -> String {
        let file = directory.appendingPathComponent("\(name).kubeconfig")
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: test, cluster: {server: "\(url)", insecure-skip-tls-verify: true}}]
            users: [{name: \(name), user: {token: "\(token)"}}]
            contexts: [{name: test, context: {cluster: test, user: \(name)}}]
            current-context: test

            """.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    /// A loopback port nothing listens on now.
    public static func freePort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else { throw PollTimeout(description: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        apiserver?.terminate()
        etcd.terminate()
        try? FileManager.default.removeItem(at: directory)
    }
}
