import MeshConfig
import NIOHTTP1

/// How one exchange is spoken to a plain upstream (an app, not a peer proxy): the app's
/// declared protocol decides, not the client's, except that gRPC cannot travel as HTTP/1.1
/// and always goes as HTTP/2. Public so `eino-microbench` can time it.
public enum UpstreamProtocol {
    /// Whether the exchange goes as an HTTP/2 stream (prior knowledge, clear text).
    public static func speaksHTTP2(_ declared: AppProtocol, _ headers: HTTPHeaders) -> Bool {
        declared.speaksHTTP2 || isGRPC(headers)
    }

    /// `content-type: application/grpc`, optionally `+proto`, `+json` … or parameters
    /// (gRPC over HTTP/2, §Requests). Not gRPC-Web (`application/grpc-web`), which is
    /// made to cross HTTP/1.1.
    public static func isGRPC(_ headers: HTTPHeaders) -> Bool {
        guard let type = headers.first(name: "content-type") else { return false }
        let prefix = "application/grpc".utf8
        let bytes = type.utf8
        func lowered(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
        guard bytes.count >= prefix.count, zip(bytes, prefix).allSatisfy({ lowered($0) == $1 }) else { return false }
        let next = bytes.dropFirst(prefix.count).first
        return next == nil || next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }
}
