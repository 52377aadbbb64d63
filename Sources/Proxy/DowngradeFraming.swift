import NIOHTTP1

/// Frames an HTTP/2 request for an HTTP/1.1 app. HTTP/2 needs no Content-Length (a stream
/// ends with END_STREAM), HTTP/1.1 does: without one and without chunking, the app would
/// read a body as the next request. The head is held until the first part after it shows
/// whether content (body or trailers) follows — in the same read when the HEADERS frame
/// ends the stream, so a bodyless request waits for nothing. Public so `eino-microbench` can
/// time it.
public enum DowngradeFraming {
    /// Whether the head must wait for that decision: it says nothing of its length itself.
    public static func needsDecision(_ head: HTTPRequestHead) -> Bool {
        !head.headers.contains(name: "content-length")
    }

    /// Frames `head` once it is known whether content follows: chunked when it does (the
    /// only HTTP/1.1 framing for a length not known up front, and the one carrying
    /// trailers); otherwise `content-length: 0` for the methods whose requests usually
    /// carry a body (which NIO's encoder would chunk), nothing for the rest, as a client
    /// sends them.
    public static func frame(_ head: inout HTTPRequestHead, contentFollows: Bool) {
        if contentFollows {
            head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        } else if head.method == .POST || head.method == .PUT || head.method == .PATCH {
            head.headers.replaceOrAdd(name: "content-length", value: "0")
        }
    }
}
