import EinoTestSupport
import Foundation
import Testing

/// Trace context through two proxies with mTLS between them, span export to a real local
/// OTLP receiver (Tests/Scripts/otlp_receiver.py), and the JSON access log.
@Suite(.serialized) struct TracingTests {
    typealias Certificates = MTLSTests.Certificates

    /// A client proxy and a server proxy (mTLS between them) in front of an app that echoes
    /// request headers; `extra` flags go to both proxies, `clientExtra` to the client only.
    final class Mesh {
        let certificates: Certificates
        let app: Upstream
        let server: RunningProxy
        let client: RunningProxy

        init(extra: [String] = [], clientExtra: [String] = []) throws {
            certificates = try Certificates(services: ["client", "web"])
            app = try Upstream("web-app")
            server = try RunningProxy(config: MTLSTests.serverConfig(certificates, certificate: "web"), app: app.address, extra: extra)
            client = try RunningProxy(
                config: MTLSTests.clientConfig(certificates, inbound: server.inbound, expected: MTLSTests.spiffe("web")),
                extra: extra + clientExtra)
        }

        /// The headers the app received for one GET sent to the client proxy as `web`.
        func appHeaders(_ headers: [String] = []) throws -> [String: String] {
            let output = try curl(["-s", "-f", "-H", "Host: web"] + headers.flatMap { ["-H", $0] } + ["http://\(client.outbound)/headers"])
            guard output.status == 0 else { throw HarnessError("curl failed (\(output.status)): \(client.process.stderr)\n\(server.process.stderr)") }
            var result: [String: String] = [:]
            for line in output.stdout.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 { result[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
            return result
        }
    }

    /// The Python OTLP/HTTP JSON receiver.
    final class OTLPReceiver {
        let process: Background
        let port: Int

        /// `refusing`: answer every POST with this status instead of storing it.
        init(refusing status: Int? = nil) throws {
            process = try Background("/usr/bin/env", ["python3", scripts.appendingPathComponent("otlp_receiver.py").path] + (status.map { [String($0)] } ?? []))
            process.killOnDeinit = true
            port = Int(try process.line(startingWith: "listening ").dropFirst("listening ".count))!
        }

        var url: String { "http://127.0.0.1:\(port)" }

        /// Every span received so far.
        func spans() throws -> [[String: Any]] {
            let output = try curl(["-s", "\(url)/spans"])
            return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]] ?? []
        }

        /// Waits until at least `count` spans arrived; returns them all.
        func waitForSpans(_ count: Int) throws -> [[String: Any]] {
            var spans: [[String: Any]] = []
            _ = try eventually(timeout: 15) {
                spans = try self.spans()
                return spans.count >= count
            }
            guard spans.count >= count else { throw HarnessError("\(spans.count) spans arrived, expected \(count): \(spans)") }
            return spans
        }
    }

    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    @Test func traceContextCrossesTwoProxiesUnchanged() throws {
        let mesh = try Mesh()
        // W3C with tracestate: both arrive as they were sent.
        let w3c = try mesh.appHeaders(["traceparent: 00-\(Self.traceID)-00f067aa0ba902b7-01", "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"])
        #expect(w3c["traceparent"] == "00-\(Self.traceID)-00f067aa0ba902b7-01")
        #expect(w3c["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        #expect(w3c["eino-client-id"] == MTLSTests.spiffe("client"))
        // B3 single and multi.
        let single = try mesh.appHeaders(["b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"])
        #expect(single["b3"] == "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
        let multi = try mesh.appHeaders(["X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124", "X-B3-SpanId: a2fb4a1d1a96d312",
                                         "X-B3-ParentSpanId: 0020000000000001", "X-B3-Sampled: 1"])
        #expect(multi["x-b3-traceid"] == "463ac35c9f6413ad48485a3953bb6124")
        #expect(multi["x-b3-spanid"] == "a2fb4a1d1a96d312")
        #expect(multi["x-b3-parentspanid"] == "0020000000000001")
        #expect(multi["x-b3-sampled"] == "1")
        // Sampling rate 0 (the default) starts nothing: a request without context gets none.
        let none = try mesh.appHeaders()
        #expect(none["traceparent"] == nil)
        #expect(none["b3"] == nil)
        #expect(none["host"] == "web")
    }

    @Test func theOutboundProxyStartsTracesAtTheSampleRate() throws {
        let mesh = try Mesh(clientExtra: ["--trace-sample-rate", "1"])
        let pattern = try Regex("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
        let first = try #require(try mesh.appHeaders()["traceparent"])
        let second = try #require(try mesh.appHeaders()["traceparent"])
        #expect(first.wholeMatch(of: pattern) != nil, "\(first)")
        #expect(second.wholeMatch(of: pattern) != nil, "\(second)")
        #expect(first.split(separator: "-")[1] != second.split(separator: "-")[1])
        // An existing context is kept; an invalid one (upper case) is replaced with its tracestate.
        let kept = try mesh.appHeaders(["traceparent: 00-\(Self.traceID)-00f067aa0ba902b7-00"])
        #expect(kept["traceparent"] == "00-\(Self.traceID)-00f067aa0ba902b7-00")
        let replaced = try mesh.appHeaders(["traceparent: 00-\(Self.traceID.uppercased())-00f067aa0ba902b7-01", "tracestate: a=b"])
        let fresh = try #require(replaced["traceparent"])
        #expect(fresh.wholeMatch(of: pattern) != nil, "\(fresh)")
        #expect(!fresh.contains(Self.traceID))
        #expect(replaced["tracestate"] == nil)
        // A bare B3 decision is honoured, and the trace is written in B3.
        let decided = try #require(try mesh.appHeaders(["b3: 0"])["b3"])
        #expect(decided.wholeMatch(of: try Regex("^[0-9a-f]{32}-[0-9a-f]{16}-0$")) != nil, "\(decided)")
    }

    @Test func sampledRequestsYieldAClientAndAServerSpan() throws {
        let receiver = try OTLPReceiver()
        let mesh = try Mesh(extra: ["--trace-otlp", receiver.url], clientExtra: ["--trace-sample-rate", "1"])
        // Unsampled context: no span anywhere, and the header goes through unchanged.
        let unsampled = try mesh.appHeaders(["traceparent: 00-\(Self.traceID)-00f067aa0ba902b7-00"])
        #expect(unsampled["traceparent"] == "00-\(Self.traceID)-00f067aa0ba902b7-00")

        // No context: the outbound proxy starts a trace; its client span is the root.
        let started = try #require(try mesh.appHeaders()["traceparent"])
        let fields = started.split(separator: "-").map(String.init)
        #expect(fields.count == 4 && fields[3] == "01", "\(started)")
        var spans = try receiver.waitForSpans(2)
        #expect(spans.count == 2, "\(spans)")
        let client = try #require(spans.first { $0["kind"] as? Int == 3 })
        let server = try #require(spans.first { $0["kind"] as? Int == 2 })
        #expect(client["traceId"] as? String == fields[1])
        #expect(server["traceId"] as? String == fields[1])
        #expect(client["parentSpanId"] == nil)
        #expect(server["parentSpanId"] as? String == client["spanId"] as? String)
        // The app's parent is the inbound proxy's server span.
        #expect(server["spanId"] as? String == fields[2])
        #expect(client["name"] as? String == "GET")
        #expect(Self.attributes(client) == [
            "http.request.method": "GET", "http.response.status_code": "200", "server.address": "web", "url.path": "/headers",
            "eino.service": "web", "eino.backend": "web", "eino.peer.identity": MTLSTests.spiffe("web"),
        ])
        #expect(Self.attributes(server) == [
            "http.request.method": "GET", "http.response.status_code": "200", "server.address": "web", "url.path": "/headers",
            "eino.service": "web", "eino.backend": "web", "eino.peer.identity": MTLSTests.spiffe("client"),
        ])
        #expect((client["resource"] as? [String: String]) == ["service.name": "client", "service.namespace": "default"])
        #expect((server["resource"] as? [String: String]) == ["service.name": "web", "service.namespace": "default"])
        #expect(client["scope"] as? String == "eino")
        for span in [client, server] {
            let start = UInt64(span["startTimeUnixNano"] as? String ?? "") ?? 0
            let end = UInt64(span["endTimeUnixNano"] as? String ?? "") ?? 0
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            #expect(start > now - 60_000_000_000 && start <= end && end <= now, "\(span)")
        }
        #expect(server["startTimeUnixNano"] as? String ?? "" >= client["startTimeUnixNano"] as? String ?? "")

        // A sampled context from the client: the client span's parent is the caller's span.
        let continued = try #require(try mesh.appHeaders(["traceparent: 00-\(Self.traceID)-00f067aa0ba902b7-01"])["traceparent"])
        spans = try receiver.waitForSpans(4)
        #expect(spans.count == 4)
        let inTrace = spans.filter { $0["traceId"] as? String == Self.traceID }
        #expect(inTrace.count == 2)
        let secondClient = try #require(inTrace.first { $0["kind"] as? Int == 3 })
        let secondServer = try #require(inTrace.first { $0["kind"] as? Int == 2 })
        #expect(secondClient["parentSpanId"] as? String == "00f067aa0ba902b7")
        #expect(secondServer["parentSpanId"] as? String == secondClient["spanId"] as? String)
        #expect(continued == "00-\(Self.traceID)-\(secondServer["spanId"] as? String ?? "")-01")

        // B3, single and multi: each hop puts its span in the header, the caller's as parent.
        let single = try mesh.appHeaders(["b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"])
        let multi = try mesh.appHeaders(["X-B3-TraceId: 463ac35c9f6413ad", "X-B3-SpanId: a2fb4a1d1a96d312", "X-B3-Sampled: 1"])
        spans = try receiver.waitForSpans(8)
        #expect(spans.count == 8)
        let b3Single = spans.filter { $0["traceId"] as? String == "80f198ee56343ba864fe8b2a57d3eff7" }
        let singleClient = try #require(b3Single.first { $0["kind"] as? Int == 3 })
        let singleServer = try #require(b3Single.first { $0["kind"] as? Int == 2 })
        #expect(singleClient["parentSpanId"] as? String == "e457b5a2e4d86bd1")
        #expect(singleServer["parentSpanId"] as? String == singleClient["spanId"] as? String)
        #expect(single["b3"] == "80f198ee56343ba864fe8b2a57d3eff7-\(singleServer["spanId"] as? String ?? "")-1-\(singleClient["spanId"] as? String ?? "")")
        // A 64-bit B3 trace id is exported left-padded to 128 bits and stays 64-bit in the header.
        let b3Multi = spans.filter { $0["traceId"] as? String == "0000000000000000463ac35c9f6413ad" }
        let multiClient = try #require(b3Multi.first { $0["kind"] as? Int == 3 })
        let multiServer = try #require(b3Multi.first { $0["kind"] as? Int == 2 })
        #expect(multiClient["parentSpanId"] as? String == "a2fb4a1d1a96d312")
        #expect(multiServer["parentSpanId"] as? String == multiClient["spanId"] as? String)
        #expect(multi["x-b3-traceid"] == "463ac35c9f6413ad")
        #expect(multi["x-b3-spanid"] == multiServer["spanId"] as? String)
        #expect(multi["x-b3-parentspanid"] == multiClient["spanId"] as? String)
        #expect(multi["x-b3-sampled"] == "1")

        #expect(try eventually { try mesh.client.metric("eino_trace_spans_exported_total") == 4 })
        #expect(try mesh.server.metric("eino_trace_spans_exported_total") == 4)
        #expect(try mesh.client.metric("eino_trace_spans_dropped_total") == 0)
        #expect(try mesh.client.metric("eino_trace_spans_failed_total") == 0)
    }

    @Test func spansTheReceiverRefusesAreCountedAsFailed() throws {
        let receiver = try OTLPReceiver(refusing: 503)
        let app = try Upstream("web")
        let proxy = try RunningProxy(config: ProxyProcessTests.config([("web", [app.address])]),
                                     extra: ["--trace-otlp", receiver.url, "--trace-sample-rate", "1"])
        for _ in 0..<3 {
            #expect(try curl(["-s", "-H", "Host: web", "http://\(proxy.outbound)/"]).stdout == "web\n")
        }
        #expect(try eventually { try proxy.metric("eino_trace_spans_failed_total") == 3 })
        #expect(try proxy.metric("eino_trace_spans_exported_total") == 0)
        #expect(proxy.process.stderr.components(separatedBy: "span export to \(receiver.url)/v1/traces failing (spans are dropped meanwhile): HTTP 503").count == 2,
                "\(proxy.process.stderr)")
    }

    @Test func accessLogHasOneLinePerRequest() throws {
        let app = try Upstream("web-v1")
        let proxy = try RunningProxy(config: ProxyProcessTests.config([("web", [app.address])]),
                                     app: app.address, extra: ["--access-log", "json"])
        let result = try load(proxy.outbound, authority: "web", count: 40, connections: 4, path: "/bytes?n=100&token=secret")
        #expect(result.status == ["200": 40])
        let post = try curl(["-s", "-H", "Host: web", "-H", "traceparent: 00-\(Self.traceID)-00f067aa0ba902b7-01", "-d", "hello", "http://\(proxy.outbound)/upload"])
        #expect(post.stdout == "web-v1 5\n")
        let unknown = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nowhere", "http://\(proxy.outbound)/x"])
        #expect(unknown.stdout == "503")
        let inbound = try curl(["-s", "-H", "Host: client", "http://\(proxy.inbound)/"])
        #expect(inbound.stdout == "web-v1\n")

        #expect(eventually { proxy.process.lines(startingWith: "{").count >= 43 })
        let lines = proxy.process.lines(startingWith: "{")
        #expect(lines.count == 43)
        let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let keys: Set<String> = ["time", "direction", "method", "authority", "path", "status", "duration_ms", "bytes_received", "bytes_sent",
                                 "service", "backend", "peer_identity", "trace_id"]
        for record in records {
            #expect(Set(record.keys) == keys, "\(record)")
            #expect((record["time"] as? String)?.wholeMatch(of: try Regex("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$")) != nil)
            #expect((record["duration_ms"] as? Double ?? -1) >= 0)
        }
        let loaded = records.filter { $0["path"] as? String == "/bytes" }
        #expect(loaded.count == 40)
        for record in loaded {
            #expect(record["direction"] as? String == "outbound")
            #expect(record["method"] as? String == "GET")
            #expect(record["authority"] as? String == "web")
            #expect(record["status"] as? Int == 200)
            #expect(record["bytes_received"] as? Int == 0)
            #expect(record["bytes_sent"] as? Int == 100)
            #expect(record["service"] as? String == "web")
            #expect(record["backend"] as? String == "web")
            #expect(record["peer_identity"] is NSNull)
            #expect(record["trace_id"] is NSNull)
        }
        let upload = try #require(records.first { $0["path"] as? String == "/upload" })
        #expect(upload["method"] as? String == "POST")
        #expect(upload["bytes_received"] as? Int == 5)
        #expect(upload["bytes_sent"] as? Int == 9)
        #expect(upload["trace_id"] as? String == Self.traceID)
        let failed = try #require(records.first { $0["path"] as? String == "/x" })
        #expect(failed["status"] as? Int == 503)
        #expect(failed["authority"] as? String == "nowhere")
        #expect(failed["service"] is NSNull)
        #expect(failed["bytes_sent"] as? Int == "unknown service nowhere\n".utf8.count)
        let served = try #require(records.first { $0["direction"] as? String == "inbound" })
        #expect(served["service"] as? String == "client")
        #expect(served["backend"] as? String == "client")
        #expect(served["status"] as? Int == 200)
        #expect(try proxy.metric("eino_access_log_dropped_total") == 0)
    }

    @Test func badTelemetryFlagsAreUsageErrors() throws {
        let cases = [
            (["--trace-sample-rate", "1.5"], "--trace-sample-rate must be between 0 and 1, got 1.5"),
            (["--trace-otlp", "collector:4318"], "--trace-otlp must be an http(s) URL, got \"collector:4318\""),
            (["--access-log", "text"], "--access-log must be json or off, got \"text\""),
        ]
        for (flags, message) in cases {
            let output = try EinoProcess.run(EinoProcess.binary, ["proxy", "--config", "/nonexistent.yaml", "--app", "127.0.0.1:9"] + flags)
            #expect(output.status == 2, "\(flags): \(output.status)")
            #expect(output.stderr.contains(message), "\(output.stderr)")
        }
    }

    /// A span's attributes as key → value text.
    static func attributes(_ span: [String: Any]) -> [String: String] {
        var result: [String: String] = [:]
        for attribute in span["attributes"] as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any], let first = value.first else { continue }
            result[key] = "\(first.value)"
        }
        return result
    }
}
