import Foundation
import Telemetry
import Testing

/// Trace-context parsing and formatting (W3C Trace Context, B3), span and access-log
/// encoding: pure, no sockets.
@Suite struct TraceContextTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parentID = "00f067aa0ba902b7"

    @Test func w3cVersion00() throws {
        let context = try #require(TraceContext.parse(traceparent: "00-\(Self.traceID)-\(Self.parentID)-01"))
        #expect(context.traceID == TraceID(high: 0x4bf9_2f35_77b3_4da6, low: 0xa3ce_929d_0e0e_4736))
        #expect(context.spanID == SpanID(0x00f0_67aa_0ba9_02b7))
        #expect(context.sampling == .sampled)
        #expect(context.format == .w3c)
        #expect(context.traceparent(span: SpanID(0x1122_3344_5566_7788)) == "00-\(Self.traceID)-1122334455667788-01")

        let unsampled = try #require(TraceContext.parse(traceparent: "00-\(Self.traceID)-\(Self.parentID)-00"))
        #expect(unsampled.sampling == .notSampled)
        // Flags this code does not know (Level 2's random, 0x02) pass through a rewrite.
        let random = try #require(TraceContext.parse(traceparent: "00-\(Self.traceID)-\(Self.parentID)-03"))
        #expect(random.sampling == .sampled)
        #expect(random.traceparent(span: SpanID(1)) == "00-\(Self.traceID)-0000000000000001-03")
    }

    @Test func w3cInvalidValuesAreIgnored() {
        let invalid = [
            "",
            "00-\(Self.traceID)-\(Self.parentID)",                          // no flags
            "00-\(Self.traceID)-\(Self.parentID)-01-",                      // version 00 is exactly 55 characters
            "00-\(Self.traceID)-\(Self.parentID)-01-extra",
            "00-\(Self.traceID.uppercased())-\(Self.parentID)-01",          // upper-case hex
            "00-\(Self.traceID)-00F067AA0BA902B7-01",
            "00-\(Self.traceID)-\(Self.parentID)-0A",
            "0A-\(Self.traceID)-\(Self.parentID)-01",
            "00-00000000000000000000000000000000-\(Self.parentID)-01",      // all-zero trace id
            "00-\(Self.traceID)-0000000000000000-01",                       // all-zero parent id
            "ff-\(Self.traceID)-\(Self.parentID)-01",                       // version ff is forbidden
            "00_\(Self.traceID)-\(Self.parentID)-01",
            "00-\(Self.traceID)_\(Self.parentID)-01",
            "00-\(Self.traceID)-\(Self.parentID)_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-\(Self.parentID)-01",       // 31 digits
            "00-\(Self.traceID)-\(Self.parentID)-0g",
            "00-\(Self.traceID)-\(Self.parentID)-1",
        ]
        for value in invalid {
            #expect(TraceContext.parse(traceparent: value) == nil, "\(value)")
        }
    }

    @Test func w3cFutureVersionsAreReadForTheKnownFields() throws {
        // A higher version may be longer, the extra part after a dash; only the sampled flag
        // is known, and a rewrite is version 00.
        let longer = try #require(TraceContext.parse(traceparent: "cc-\(Self.traceID)-\(Self.parentID)-07-what-the-future-holds"))
        #expect(longer.traceID.hex == Self.traceID)
        #expect(longer.spanID.hex == Self.parentID)
        #expect(longer.sampling == .sampled)
        #expect(longer.traceparent(span: SpanID(2)) == "00-\(Self.traceID)-0000000000000002-01")
        #expect(try #require(TraceContext.parse(traceparent: "01-\(Self.traceID)-\(Self.parentID)-00")).sampling == .notSampled)
        #expect(TraceContext.parse(traceparent: "cc-\(Self.traceID)-\(Self.parentID)-01x") == nil)
    }

    @Test func b3Single() throws {
        let value = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"
        guard case .context(let context)? = TraceContext.parse(b3: value) else { Issue.record("not parsed"); return }
        #expect(context.traceID.hex == "80f198ee56343ba864fe8b2a57d3eff7")
        #expect(context.spanID.hex == "e457b5a2e4d86bd1")
        #expect(context.sampling == .sampled)
        #expect(context.format == .b3Single)
        #expect(context.b3(span: SpanID(0xabc), parent: context.spanID) == "80f198ee56343ba864fe8b2a57d3eff7-0000000000000abc-1-e457b5a2e4d86bd1")

        // 64-bit trace ids stay 64-bit; no sampling state means the receiver decides.
        guard case .context(let short)? = TraceContext.parse(b3: "64fe8b2a57d3eff7-e457b5a2e4d86bd1") else { Issue.record("not parsed"); return }
        #expect(short.traceID == TraceID(high: 0, low: 0x64fe_8b2a_57d3_eff7))
        #expect(short.sampling == .deferred)
        #expect(short.b3(span: SpanID(1), parent: short.spanID) == "64fe8b2a57d3eff7-0000000000000001")
        guard case .context(let debug)? = TraceContext.parse(b3: "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d") else { Issue.record("not parsed"); return }
        #expect(debug.sampling == .debug)
        #expect(debug.sampling.isSampled)

        #expect(TraceContext.parse(b3: "0") == .decision(.notSampled))
        #expect(TraceContext.parse(b3: "1") == .decision(.sampled))
        #expect(TraceContext.parse(b3: "d") == .decision(.debug))
        let invalid = ["", "2", "true", "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",
                       "0000000000000000-e457b5a2e4d86bd1-1", "64fe8b2a57d3eff7-0000000000000000-1",
                       "64fe8b2a57d3eff7-e457b5a2e4d86bd1-x", "64fe8b2a57d3eff7-e457b5a2e4d86b-1",
                       "64fe8b2a57d3eff7a-e457b5a2e4d86bd1-1", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
                       "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-extra"]
        for value in invalid {
            #expect(TraceContext.parse(b3: value) == nil, "\(value)")
        }
    }

    @Test func b3Multi() throws {
        guard case .context(let context)? = TraceContext.parse(
            b3TraceID: "463ac35c9f6413ad48485a3953bb6124", spanID: "a2fb4a1d1a96d312", parentSpanID: "0020000000000001",
            sampled: "1", flags: nil)
        else { Issue.record("not parsed"); return }
        #expect(context.traceID.hex == "463ac35c9f6413ad48485a3953bb6124")
        #expect(context.spanID.hex == "a2fb4a1d1a96d312")
        #expect(context.sampling == .sampled)
        #expect(context.format == .b3Multi)

        func sampling(_ header: TraceContext.B3Header?) -> SamplingDecision? {
            if case .context(let context)? = header { return context.sampling }
            return nil
        }
        #expect(sampling(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "a2fb4a1d1a96d312", parentSpanID: nil, sampled: "false", flags: nil)) == .notSampled)
        #expect(sampling(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "a2fb4a1d1a96d312", parentSpanID: nil, sampled: nil, flags: "1")) == .debug)
        #expect(TraceContext.parse(b3TraceID: nil, spanID: nil, parentSpanID: nil, sampled: "0", flags: nil) == .decision(.notSampled))
        #expect(TraceContext.parse(b3TraceID: nil, spanID: nil, parentSpanID: nil, sampled: nil, flags: nil) == nil)
        // One id without the other, bad values: invalid.
        #expect(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: nil, parentSpanID: nil, sampled: "1", flags: nil) == nil)
        #expect(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "a2fb4a1d1a96d312", parentSpanID: nil, sampled: "yes", flags: nil) == nil)
        #expect(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "A2FB4A1D1A96D312", parentSpanID: nil, sampled: "1", flags: nil) == nil)
        #expect(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "a2fb4a1d1a96d312", parentSpanID: "0", sampled: "1", flags: nil) == nil)
        #expect(TraceContext.parse(b3TraceID: "463ac35c9f6413ad", spanID: "a2fb4a1d1a96d312", parentSpanID: nil, sampled: "1", flags: "2") == nil)
    }

    @Test func otlpJSONShape() throws {
        let span = SpanRecord(
            traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), parentSpanID: SpanID(4), kind: .client,
            method: "GET", authority: "web", path: "/a\"b", startUnixNanos: 1_700_000_000_000_000_001, endUnixNanos: 1_700_000_000_002_000_000,
            status: 503, service: "web", backend: "web-v1", peerIdentity: nil)
        let root = SpanRecord(
            traceID: TraceID(high: 1, low: 2), spanID: SpanID(5), parentSpanID: nil, kind: .server,
            method: "POST", authority: "web", path: "/", startUnixNanos: 10, endUnixNanos: 20,
            status: 200, service: nil, backend: nil, peerIdentity: "spiffe://cluster.local/ns/default/sa/client")
        let text = OTLPJSON.traces([span, root], service: "client", namespace: "default")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let resource = try #require((json["resourceSpans"] as? [[String: Any]])?.first)
        let attributes = try #require((resource["resource"] as? [String: Any])?["attributes"] as? [[String: Any]])
        #expect(attributes.first?["key"] as? String == "service.name")
        #expect((attributes.first?["value"] as? [String: Any])?["stringValue"] as? String == "client")
        let scope = try #require((resource["scopeSpans"] as? [[String: Any]])?.first)
        #expect((scope["scope"] as? [String: Any])?["name"] as? String == "eino")
        let spans = try #require(scope["spans"] as? [[String: Any]])
        #expect(spans.count == 2)
        #expect(spans[0]["traceId"] as? String == "00000000000000010000000000000002")
        #expect(spans[0]["spanId"] as? String == "0000000000000003")
        #expect(spans[0]["parentSpanId"] as? String == "0000000000000004")
        #expect(spans[0]["kind"] as? Int == 3)
        #expect(spans[0]["name"] as? String == "GET")
        #expect(spans[0]["startTimeUnixNano"] as? String == "1700000000000000001")
        #expect(spans[0]["endTimeUnixNano"] as? String == "1700000000002000000")
        #expect((spans[0]["status"] as? [String: Any])?["code"] as? Int == 2)
        let values = Dictionary(uniqueKeysWithValues: (spans[0]["attributes"] as? [[String: Any]] ?? []).map {
            ($0["key"] as! String, ($0["value"] as! [String: Any]).values.first.map { "\($0)" } ?? "")
        })
        #expect(values == ["http.request.method": "GET", "http.response.status_code": "503", "server.address": "web",
                           "url.path": "/a\"b", "eino.service": "web", "eino.backend": "web-v1"])
        #expect(spans[1]["parentSpanId"] == nil)
        #expect(spans[1]["kind"] as? Int == 2)
        #expect((spans[1]["status"] as? [String: Any])?.isEmpty == true)
    }

    @Test func accessLogLine() throws {
        let record = AccessLogRecord(
            unixNanos: 1_700_000_000_123_456_789, direction: "outbound", method: "GET", authority: "web", path: "/x\n",
            status: 200, durationNanos: 1_234_567, bytesReceived: 5, bytesSent: 7, service: "web", backend: "web-v2",
            peerIdentity: nil, traceID: TraceID(high: 0, low: 255))
        #expect(record.jsonLine == """
            {"time":"2023-11-14T22:13:20.123Z","direction":"outbound","method":"GET","authority":"web","path":"/x\\n","status":200,\
            "duration_ms":1.234,"bytes_received":5,"bytes_sent":7,"service":"web","backend":"web-v2","peer_identity":null,\
            "trace_id":"000000000000000000000000000000ff"}
            """)
        #expect(WallClock.rfc3339(unixNanos: 0) == "1970-01-01T00:00:00.000Z")
        #expect(WallClock.rfc3339(unixNanos: 951_782_400_000_000_000) == "2000-02-29T00:00:00.000Z")
        #expect(WallClock.rfc3339(unixNanos: 4_102_444_799_999_000_000) == "2099-12-31T23:59:59.999Z")
    }

    @Test func loopBufferDropsAndCountsWhenFull() {
        let buffer = LoopBuffer<Int>(capacity: 3)
        for value in 0..<5 { buffer.append(value) }
        let first = buffer.drain()
        #expect(first.items == [0, 1, 2])
        #expect(first.dropped == 2)
        buffer.append(9)
        let second = buffer.drain()
        #expect(second.items == [9])
        #expect(second.dropped == 0)
    }
}
