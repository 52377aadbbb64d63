import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// A small client for the Kubernetes API: JSON over HTTPS with a bearer token, list and
/// watch, create and replace. No Swift client library is in the package set, and Eino
/// reads only a handful of kinds.
public final class KubernetesClient: Sendable {
    public let config: KubeConfig
    private let http: HTTPClient

    public init(_ config: KubeConfig) throws {
        self.config = config
        var tls = TLSConfiguration.makeClientConfiguration()
        if let pem = config.certificateAuthorityPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
        }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        // No read timeout: a watch is silent for as long as nothing changes.
        configuration.timeout = .init(connect: .seconds(5))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// A refusal from the API server: its status code and its `Status` message.
    public struct APIError: Error, CustomStringConvertible {
        public var status: Int
        public var reason: String
        public var message: String
        public var description: String { "the Kubernetes API answered \(status) \(reason): \(message)" }
    }

    /// One request; the body of a 2xx answer, else the server's `Status` as `APIError`.
    public func send(_ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json",
                     timeout: TimeAmount = .seconds(30)) async throws -> Data {
        let response = try await http.execute(request(method, path, body: body, contentType: contentType), timeout: timeout)
        let data = Data(buffer: try await response.body.collect(upTo: 256 << 20))
        guard (200..<300).contains(response.status.code) else { throw Self.apiError(status: Int(response.status.code), data) }
        return data
    }

    private func request(_ method: HTTPMethod, _ path: String, body: Data?, contentType: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: config.server + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let token = config.bearerToken { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(data: body))
        }
        return request
    }

    static func apiError(status: Int, _ data: Data) -> APIError {
        let object = try? JSONDecoder().decode(JSONValue.self, from: data)
        return APIError(status: status, reason: object?["reason"]?.string ?? "",
                        message: object?["message"]?.string ?? String(decoding: data.prefix(500), as: UTF8.self))
    }

    public func get<T: Decodable>(_ path: String, as type: T.Type = T.self) async throws -> T {
        try JSONDecoder().decode(T.self, from: try await send(.GET, path))
    }

    public func create<T: Encodable, R: Decodable>(_ path: String, _ object: T, as type: R.Type = R.self) async throws -> R {
        try JSONDecoder().decode(R.self, from: try await send(.POST, path, body: JSONEncoder().encode(object)))
    }

    public func replace<T: Encodable, R: Decodable>(_ path: String, _ object: T, as type: R.Type = R.self) async throws -> R {
        try JSONDecoder().decode(R.self, from: try await send(.PUT, path, body: JSONEncoder().encode(object)))
    }

    /// A list: its items, each as JSON (one that does not decode as `T` is for the caller
    /// to report), and the resourceVersion to watch from.
    public func list(_ path: String) async throws -> (items: [JSONValue], resourceVersion: String) {
        let list = try JSONDecoder().decode(JSONValue.self, from: try await send(.GET, path, timeout: .seconds(120)))
        guard case .array(let items)? = list["items"] else { return ([], list["metadata"]?["resourceVersion"]?.string ?? "") }
        return (items, list["metadata"]?["resourceVersion"]?.string ?? "")
    }

    /// One watch event: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (whose object is a Status).
    public struct WatchEvent: Sendable, Decodable {
        public var type: String
        public var object: JSONValue
    }

    /// A watch from `resourceVersion`, as the API server streams it (one JSON event a
    /// line), with bookmarks. Ends when the server ends it; throws on a refused watch.
    public func watch(_ path: String, resourceVersion: String) -> AsyncThrowingStream<WatchEvent, Error> {
        let separator = path.contains("?") ? "&" : "?"
        let url = path + separator + "watch=1&allowWatchBookmarks=true&resourceVersion=\(resourceVersion)"
        let request = request(.GET, url, body: nil, contentType: "")
        let http = self.http
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await http.execute(request, timeout: .hours(24 * 365))
                    guard response.status.code == 200 else {
                        let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
                        throw Self.apiError(status: Int(response.status.code), data)
                    }
                    var pending = Data()
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = pending[pending.startIndex..<newline]
                            pending = Data(pending[pending.index(after: newline)...])
                            if line.isEmpty { continue }
                            continuation.yield(try JSONDecoder().decode(WatchEvent.self, from: line))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Asks the API server whether `token` is a valid ServiceAccount token for one of
    /// `audiences` (`authentication.k8s.io/v1` TokenReview).
    public func reviewToken(_ token: String, audiences: [String]) async throws -> TokenReview.Status {
        let review = TokenReview(spec: .init(token: token, audiences: audiences))
        let answered: TokenReview = try await create("/apis/authentication.k8s.io/v1/tokenreviews", review)
        return answered.status ?? .init(authenticated: false, user: nil, audiences: nil, error: "no status in the TokenReview")
    }
}
