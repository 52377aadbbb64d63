import Manifests
import MeshConfig
import Testing

@testable import Proxy

/// Comparison of primary and shadow responses, without sockets.
@Suite struct ResponseComparatorTests {
    static func response(_ status: Int = 200, _ headers: [(String, String)] = [], json: String? = nil, body: String = "") -> CapturedResponse {
        var all = headers.map { (name: $0.0, value: $0.1) }
        if json != nil { all.append((name: "content-type", value: "application/json")) }
        var response = CapturedResponse(status: status, headers: all)
        response.append(Array((json ?? body).utf8), cap: 1024)
        return response
    }

    static let rules = MirrorComparison(ignoreHeaders: ["x-request-id"], ignoreJSONPaths: [JSONPath.parse("$.meta.time")!, JSONPath.parse("$.items[*].id")!], maxBodyBytes: 1024)

    @Test func equalResponsesDoNotDiffer() {
        let difference = ResponseComparator.compare(
            primary: Self.response(200, [("x-version", "1"), ("date", "Mon"), ("x-request-id", "a"), ("content-length", "9")], json: #"{"a":1,"b":[1,2]}"#),
            shadow: Self.response(200, [("x-version", "1"), ("date", "Tue"), ("x-request-id", "b")], json: #"{ "b": [1, 2.0], "a": 1 }"#),
            rules: Self.rules)
        #expect(difference == ResponseDifference())
    }

    @Test func eachPartIsReportedWithTheFirstDifference() {
        let difference = ResponseComparator.compare(
            primary: Self.response(200, [("x-version", "1")], json: #"{"a":{"b":[1,2,3]}}"#),
            shadow: Self.response(503, [("x-version", "2")], json: #"{"a":{"b":[1,5,3]}}"#),
            rules: Self.rules)
        #expect(difference.status && difference.headers && difference.body)
        #expect(difference.first == "status 200 != 503")
        let body = ResponseComparator.compare(
            primary: Self.response(json: #"{"a":{"b":[1,2,3]}}"#), shadow: Self.response(json: #"{"a":{"b":[1,5,3]}}"#), rules: Self.rules)
        #expect(body.first == "$.a.b[1]: 2 != 5")
        let header = ResponseComparator.compare(primary: Self.response(200, [("x-version", "1")]), shadow: Self.response(200, []), rules: Self.rules)
        #expect(header.first == #"header x-version: "1" != (absent)"#)
    }

    @Test func ignoredJSONPathsAreLeftOut() {
        let difference = ResponseComparator.compare(
            primary: Self.response(json: #"{"meta":{"time":1,"v":2},"items":[{"id":1,"n":"a"},{"id":2,"n":"b"}]}"#),
            shadow: Self.response(json: #"{"meta":{"time":9,"v":2},"items":[{"id":7,"n":"a"},{"id":8,"n":"b"}]}"#),
            rules: Self.rules)
        #expect(!difference.any)
        let missing = ResponseComparator.compare(
            primary: Self.response(json: #"{"a":1,"b":true}"#), shadow: Self.response(json: #"{"a":1}"#), rules: Self.rules)
        #expect(missing.first == "$.b: true != (absent)")
    }

    @Test func nonJSONBodiesCompareBytesAndOversizedOnesAreNotCompared() {
        let bytes = ResponseComparator.compare(primary: Self.response(body: "hello world"), shadow: Self.response(body: "hello there"), rules: Self.rules)
        #expect(bytes.body && bytes.first == "body differs at byte 6 (11 vs 11 bytes)")
        var big = Self.response(body: "")
        big.append([UInt8](repeating: 1, count: 2000), cap: 1024)
        #expect(big.truncated && big.body.isEmpty)
        #expect(!ResponseComparator.compare(primary: big, shadow: Self.response(body: "other"), rules: Self.rules).body)
        // Invalid JSON declared as JSON falls back to bytes.
        #expect(ResponseComparator.compare(primary: Self.response(json: "{"), shadow: Self.response(json: "{"), rules: Self.rules) == ResponseDifference())
    }

    @Test func shadowAuthorityKeepsThePort() {
        #expect(MirrorCopy.shadowAuthority("web") == "web-shadow")
        #expect(MirrorCopy.shadowAuthority("web:8080") == "web-shadow:8080")
        #expect(MirrorCopy.shadowAuthority("[::1]:80") == "[::1]-shadow:80")
    }

    @Test func samplingThresholdIsInMillionths() {
        #expect(MirrorTarget(service: ServiceKey(name: "a"), percent: 25).threshold == 250_000)
        #expect(MirrorTarget(service: ServiceKey(name: "a"), percent: 0.5).threshold == 5_000)
        #expect(MirrorTarget(service: ServiceKey(name: "a"), percent: 100).samples(random: 999_999))
        #expect(!MirrorTarget(service: ServiceKey(name: "a"), percent: 0).samples(random: 0))
    }
}
