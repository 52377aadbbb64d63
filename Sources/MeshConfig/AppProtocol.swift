/// How the app behind a service is spoken to, as a Kubernetes Service port declares it with
/// `appProtocol`. The port decides, not the client: an HTTP/2 client of an HTTP/1.1 app is
/// converted, as Istio and Linkerd do, and so is an HTTP/1.1 client of an h2c app.
public enum AppProtocol: String, Sendable, Codable, CaseIterable {
    /// HTTP/1.1, the default: what most apps speak.
    case http
    /// HTTP/2 with prior knowledge, in clear text.
    case h2c
    /// gRPC: HTTP/2 with prior knowledge, like `h2c`.
    case grpc

    /// Reads a declared protocol in the spellings Kubernetes and the meshes use:
    /// `kubernetes.io/h2c` (the standard name) and Istio's `http2` both mean `h2c`.
    /// Case does not matter, as in Kubernetes port names. Nil for anything else.
    public init?(declared: String) {
        switch declared.lowercased() {
        case "http": self = .http
        case "h2c", "kubernetes.io/h2c", "http2": self = .h2c
        case "grpc": self = .grpc
        default: return nil
        }
    }

    /// The spellings ``init(declared:)`` accepts, for error messages.
    public static let spellings = "http, h2c (also kubernetes.io/h2c or http2), grpc"

    /// Whether the app is spoken to in HTTP/2.
    public var speaksHTTP2: Bool { self != .http }
}
