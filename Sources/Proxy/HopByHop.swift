import NIOHTTP1

/// Hop-by-hop header fields (RFC 9110 §7.6.1): they describe one connection, so a proxy
/// drops them and the encoder on the other side makes its own framing. Pure, public so
/// `eino-microbench` can time it as the request path runs it.
public enum HopByHop {
    static let names: [String] = ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"]

    /// Removes hop-by-hop fields, including any the Connection field names, keeping
    /// `te: trailers`. `transfer-encoding: chunked` is kept only when `keepChunked` and no
    /// content-length says the length.
    public static func remove(from headers: inout HTTPHeaders, keepChunked: Bool) {
        for value in headers[canonicalForm: "connection"] {
            let name = value.lowercased()
            if name != "close" && name != "keep-alive" { headers.remove(name: String(name)) }
        }
        let teTrailers = headers[canonicalForm: "te"].contains { $0.lowercased() == "trailers" }
        let chunked = headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
        for name in names where headers.contains(name: name) { headers.remove(name: name) }
        if teTrailers { headers.add(name: "te", value: "trailers") }
        if keepChunked && chunked && !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
    }
}
