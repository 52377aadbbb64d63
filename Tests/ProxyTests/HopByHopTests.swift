import NIOHTTP1
import Proxy
import Testing

@Suite struct HopByHopTests {
    func rewritten(_ fields: [(String, String)], keepChunked: Bool = true) -> [String] {
        var headers = HTTPHeaders(fields)
        HopByHop.remove(from: &headers, keepChunked: keepChunked)
        return headers.map { "\($0.name): \($0.value)" }
    }

    @Test func headsWithoutHopByHopFieldsStayAsTheyAre() {
        #expect(rewritten([("Host", "web"), ("Accept", "*/*"), ("X-Id", "7")]) == ["Host: web", "Accept: */*", "X-Id: 7"])
        #expect(rewritten([]) == [])
    }

    @Test func removesEveryHopByHopField() {
        let fields = [("Host", "web"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "x"),
                      ("TE", "gzip"), ("Upgrade", "h2c"), ("Proxy-Authenticate", "Basic"), ("Proxy-Authorization", "Basic eA=="),
                      ("Transfer-Encoding", "gzip"), ("Accept", "*/*")]
        #expect(rewritten(fields) == ["Host: web", "Accept: */*"])
    }

    @Test func removesWhatConnectionNamesWhateverTheCaseAndSpacing() {
        let fields = [("Host", "web"), ("connection", " X-Trace ,\tKEEP-ALIVE,, x-debug"), ("X-Trace", "1"), ("x-debug", "on"),
                      ("Connection", "Close"), ("X-Kept", "yes")]
        #expect(rewritten(fields) == ["Host: web", "X-Kept: yes"])
    }

    @Test func keepsTrailersAndChunkedFramingWhereAsked() {
        #expect(rewritten([("Host", "web"), ("TE", "gzip, Trailers"), ("Transfer-Encoding", "gzip, chunked")])
                == ["Host: web", "te: trailers", "transfer-encoding: chunked"])
        #expect(rewritten([("Transfer-Encoding", "chunked")], keepChunked: false) == [])
        #expect(rewritten([("Transfer-Encoding", "chunked"), ("Content-Length", "3")]) == ["Content-Length: 3"])
        // A TE field the Connection field names is gone before its trailers token is read.
        #expect(rewritten([("Connection", "te"), ("TE", "trailers")]) == [])
    }
}
