import EinoTestSupport
import Foundation
import Testing

/// The built `eino proxy` against real upstream processes and real clients on loopback.
/// Serialized: several of these measure time or memory, and the machine has two cores.
@Suite(.serialized) struct ProxyProcessTests {
    static func config(_ services: [(String, [String])], manifests: String = "") -> String {
        var text = """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client, namespace: default}
        services:

        """
        for (name, addresses) in services {
            text += "- name: \(name)\n"
            if !addresses.isEmpty {
                text += "  endpoints:\n"
                for address in addresses { text += "  - address: \"\(address)\"\n" }
            }
        }
        if !manifests.isEmpty { text += "---\n" + manifests }
        return text
    }

    static func split(_ backends: [(String, Int)], matches: String? = nil) -> String {
        var text = """
        apiVersion: split.smi-spec.io/\(matches == nil ? "v1alpha2" : "v1alpha4")
        kind: TrafficSplit
        metadata: {name: web-split}
        spec:
          service: web

        """
        if let matches { text += "  matches: [{kind: HTTPRouteGroup, name: \(matches)}]\n" }
        text += "  backends:\n"
        for (service, weight) in backends { text += "  - {service: \(service), weight: \(weight)}\n" }
        return text
    }

    /// A split whose services are written as FQDNs routes, counts and shows by short name.
    @Test func aSplitNamedByFQDNsRoutesByTheShortName() throws {
        let v1 = try Upstream("web-v1")
        let v2 = try Upstream("web-v2")
        let manifests = Self.split([("web-v1.default.svc.cluster.local", 0), ("web-v2.default", 1)])
            .replacingOccurrences(of: "service: web\n", with: "service: web.default.svc.cluster.local\n")
        let proxy = try RunningProxy(config: Self.config([("web-v1", [v1.address]), ("web-v2", [v2.address])], manifests: manifests))
        for host in ["web", "web.default", "web.default.svc.cluster.local"] {
            #expect(try curl(["-s", "-H", "Host: \(host)", "http://\(proxy.outbound)/"]).stdout == "web-v2\n")
        }
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web-v2\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 3)
        let config = try curl(["-s", "http://\(proxy.admin)/config"]).stdout
        #expect(config.contains("\"service\" : \"web-v1\""))
        #expect(!config.contains("svc.cluster.local"))
    }

    @Test func keepAliveAndChunkedThroughOutbound() throws {
        let web = try Upstream("web-v1")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        // One curl, three URLs: one connection, kept alive between them.
        let output = try curl(["-sv", "-H", "Host: web", "http://\(proxy.outbound)/", "http://\(proxy.outbound)/chunked", "http://\(proxy.outbound)/"])
        #expect(output.status == 0)
        #expect(output.stdout == "web-v1\nchunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\nweb-v1\n")
        #expect(output.stderr.contains("transfer-encoding: chunked"))
        #expect(output.stderr.components(separatedBy: "Re-using existing connection").count - 1 == 2)
        #expect(try proxy.metric("eino_tcp_open_total{direction=\"outbound\"}") == 1)
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 3)
        // HEAD keeps the length and sends no body; an HTTP/1.0 client gets HTTP/1.0 and a close.
        let head = try curl(["-s", "-I", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(head.stdout.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(headerValue(head.stdout, "content-length") == "7")
        let old = try curl(["-s", "-0", "-i", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(old.stdout.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(old.stdout.hasSuffix("\r\n\r\nweb-v1\n"))
        // Pipelining: both answers, in order, the second closing the connection.
        let pipelined = try python("pipelined.py", [proxy.outbound, "web"])
        let answers = pipelined.stdout.components(separatedBy: "HTTP/1.1 200 OK\r\n")
        #expect(answers.count == 3, "\(pipelined.stdout)")
        #expect(answers.count == 3 && answers[1].hasSuffix("\r\n\r\nxxx"))
        #expect(answers.count == 3 && answers[2].contains("connection: close\r\n"))
        #expect(answers.count == 3 && answers[2].hasSuffix("chunk-4\n\r\n0\r\n\r\n"))
        // Pooled upstream connection: the upstream saw the three requests on few connections,
        // and the answers carry the upstream's own framing, not hop-by-hop headers.
        let headers = try curl(["-s", "-H", "Host: web.default.svc.cluster.local:80", "-H", "Connection: keep-alive, x-private", "-H", "x-private: secret", "http://\(proxy.outbound)/headers"])
        #expect(!headers.stdout.contains("x-private"))
        #expect(!headers.stdout.contains("connection:"))
        #expect(headers.stdout.contains("host: web.default.svc.cluster.local:80"))
    }

    @Test func eightyTwentySplitOverTenThousandRequests() throws {
        let v1 = try Upstream("web-v1")
        let v2 = try Upstream("web-v2")
        let config = Self.config([("web-v1", [v1.address]), ("web-v2", [v2.address]), ("web-v3", [])],
                                 manifests: Self.split([("web-v1", 80), ("web-v2", 20), ("web-v3", 50)]))
        let proxy = try RunningProxy(config: config)
        let result = try load(proxy.outbound, authority: "web", count: 10_000, connections: 4)
        #expect(result.errors == 0)
        #expect(result.status == ["200": 10_000])
        // web-v3 has no endpoints: it gets nothing and the others share 80:20.
        #expect(result.served["web-v3"] == nil)
        let v1Share = Double(result.served["web-v1"] ?? 0) / 10_000
        let v2Share = Double(result.served["web-v2"] ?? 0) / 10_000
        #expect(abs(v1Share - 0.8) <= 0.02, "web-v1 got \(v1Share)")
        #expect(abs(v2Share - 0.2) <= 0.02, "web-v2 got \(v2Share)")
        #expect((result.served["web-v1"] ?? 0) + (result.served["web-v2"] ?? 0) == 10_000)
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web-v1\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == Double(result.served["web-v1"] ?? -1))
    }

    @Test func headerMatchedRouteGroupSendsOnlyMatchingRequestsToTheCanary() throws {
        let stable = try Upstream("web")
        let canary = try Upstream("web-canary")
        let routes = """
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: HTTPRouteGroup
        metadata: {name: canary-users}
        spec:
          matches:
          - name: opted-in
            headers: {x-canary: "true"}
        ---

        """
        let proxy = try RunningProxy(config: Self.config([("web", [stable.address]), ("web-canary", [canary.address])],
                                                         manifests: routes + Self.split([("web-canary", 100)], matches: "canary-users")))
        let matching = try load(proxy.outbound, authority: "web", count: 300, connections: 2, headers: ["x-canary:true"])
        #expect(matching.served == ["web-canary": 300])
        let others = try load(proxy.outbound, authority: "web", count: 300, connections: 2, headers: ["x-canary:false"])
        #expect(others.served == ["web": 300])
        let none = try load(proxy.outbound, authority: "web", count: 100, connections: 1)
        #expect(none.served == ["web": 100])
    }

    @Test func proxyMadeErrors() throws {
        let closedPort = try Upstream("gone")
        let gone = closedPort.address
        closedPort.process.stop(SIGKILL)
        let proxy = try RunningProxy(config: Self.config([("web", [gone]), ("empty", [])]))
        let down = try curl(["-s", "-i", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(down.stdout.hasPrefix("HTTP/1.1 502 "))
        #expect(headerValue(down.stdout, "eino-error") == "upstream connect failed")
        let unknown = try curl(["-s", "-i", "-H", "Host: nothing.default.svc", "http://\(proxy.outbound)/"])
        #expect(unknown.stdout.hasPrefix("HTTP/1.1 503 "))
        #expect(headerValue(unknown.stdout, "eino-error") == "unknown service nothing")
        let empty = try curl(["-s", "-i", "-H", "Host: empty:8080", "http://\(proxy.outbound)/"])
        #expect(empty.stdout.hasPrefix("HTTP/1.1 503 "))
        #expect(headerValue(empty.stdout, "eino-error") == "no endpoints")
        // A large body for a request answered locally is read and dropped, not left hanging.
        let bigBody = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "head -c 16000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' -H 'Host: nothing' --data-binary @- http://\(proxy.outbound)/"])
        #expect(bigBody.stdout == "503")
        #expect(try proxy.metric("eino_proxy_errors_total{direction=\"outbound\",cause=\"connect_failed\"}") == 1)
        #expect(try proxy.metric("eino_proxy_errors_total{direction=\"outbound\",cause=\"unknown_service\"}") == 2)
    }

    @Test func scriptedMixIsCountedExactlyAndParsesAsPrometheusText() throws {
        let web = try Upstream("web")
        let closedPort = try Upstream("gone")
        let gone = closedPort.address
        closedPort.process.stop(SIGKILL)
        let proxy = try RunningProxy(config: Self.config([("web", [web.address]), ("gone", [gone])]))
        #expect(try load(proxy.outbound, authority: "web", count: 70).status == ["200": 70])
        #expect(try load(proxy.outbound, authority: "web", count: 20, path: "/status?code=503").status == ["503": 20])
        #expect(try load(proxy.outbound, authority: "gone", count: 10).status == ["502": 10])

        let metrics = try PrometheusSamples(url: "http://\(proxy.admin)/metrics")
        let web200 = ["direction": "outbound", "service": "web", "backend": "web", "tls": "false"]
        let gone502 = ["direction": "outbound", "service": "gone", "backend": "gone", "tls": "false"]
        #expect(metrics.value("eino_requests_total", web200) == 90)
        #expect(metrics.value("eino_responses_total", web200.merging(["status_code": "200", "classification": "success"]) { $1 }) == 70)
        #expect(metrics.value("eino_responses_total", web200.merging(["status_code": "503", "classification": "failure"]) { $1 }) == 20)
        #expect(metrics.value("eino_responses_total", web200.merging(["status_code": "503", "classification": "success"]) { $1 }) == 0)
        #expect(metrics.value("eino_requests_total", gone502) == 10)
        #expect(metrics.value("eino_responses_total", gone502.merging(["status_code": "502", "classification": "failure"]) { $1 }) == 10)
        #expect(metrics.value("eino_proxy_errors_total", ["direction": "outbound", "cause": "connect_failed"]) == 10)
        #expect(metrics.value("eino_response_latency_seconds_count", web200) == 90)
        #expect(metrics.value("eino_request_duration_seconds_bucket", web200.merging(["le": "+Inf"]) { $1 }) == 90)
        #expect(metrics.value("eino_tcp_open_total", ["direction": "outbound"]) >= 3)
        #expect(metrics.value("process_resident_memory_bytes") > 1_000_000)
        #expect(metrics.value("process_open_fds") >= 5)
        #expect(abs(metrics.value("process_start_time_seconds") - Date().timeIntervalSince1970) < 120)
    }

    @Test func zeroEndpointBackendGetsNothingAndNothingFails() throws {
        let v1 = try Upstream("web-v1")
        let config = Self.config([("web-v1", [v1.address]), ("web-v2", [])], manifests: Self.split([("web-v1", 50), ("web-v2", 50)]))
        let proxy = try RunningProxy(config: config)
        let result = try load(proxy.outbound, authority: "web", count: 500, connections: 2)
        #expect(result.served == ["web-v1": 500])
        #expect(result.status == ["200": 500])
        #expect(result.errors == 0)
    }

    @Test func requestTimeoutIs504() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]), extra: ["--request-timeout", "300ms"])
        let output = try curl(["-s", "-i", "-H", "Host: web", "http://\(proxy.outbound)/slow?ms=3000"])
        #expect(output.stdout.hasPrefix("HTTP/1.1 504 "))
        #expect(headerValue(output.stdout, "eino-error") == "request timeout")
        let fast = try curl(["-s", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(fast.stdout == "web\n")
    }

    @Test func slowHeadIsCutOffWith408AndOversizedHeadGets431() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]), extra: ["--header-timeout", "1s"])
        let slow = try python("slowloris.py", [proxy.outbound])
        #expect(slow.status == 0, "\(slow.stderr)")
        #expect(slow.stdout.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(slow.stdout.contains("eino-error: request header timeout\r\n"))
        #expect(slow.stdout.hasSuffix("closed\n"))
        let big = String(repeating: "a", count: 70 * 1024)
        let oversized = try curl(["-s", "-i", "-H", "Host: web", "-H", "x-big: \(big)", "http://\(proxy.outbound)/"])
        #expect(oversized.stdout.hasPrefix("HTTP/1.1 431 "))
        #expect(headerValue(oversized.stdout, "eino-error") == "request header too large")
        // Under the limit passes.
        let fits = try curl(["-s", "-H", "Host: web", "-H", "x-big: \(String(repeating: "a", count: 60 * 1024))", "http://\(proxy.outbound)/"])
        #expect(fits.stdout == "web\n")
    }

    @Test func http2IsMultiplexedToAnHTTP2UpstreamAndGRPCTrailersArrive() throws {
        let grpc = try H2Upstream("grpc-v1")
        // Declared grpc: the plain requests below (no gRPC content-type) go as HTTP/2 too.
        let proxy = try RunningProxy(config: Self.config([("grpc", [grpc.address])])
            .replacingOccurrences(of: "- name: grpc\n", with: "- name: grpc\n  appProtocol: grpc\n"))
        let plain = try curl(["-s", "-i", "--http2-prior-knowledge", "-H", "Host: grpc", "http://\(proxy.outbound)/"])
        #expect(plain.stdout.hasPrefix("HTTP/2 200"))
        #expect(headerValue(plain.stdout, "x-served-by") == "grpc-v1")
        let call = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-v", "-H", ":authority: grpc", "http://\(proxy.outbound)/pkg.Service/Method"])
        #expect(call.status == 0)
        #expect(call.stdout.contains("grpc-status: 0"))
        #expect(call.stdout.contains("grpc-message: ok"))
        #expect(call.stdout.contains("grpc-v1 /pkg.Service/Method 0 conn="))
        let failing = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-v", "-H", ":authority: grpc", "http://\(proxy.outbound)/fail"])
        #expect(failing.stdout.contains("grpc-status: 13"))
        // Twenty concurrent streams on one downstream connection share one upstream connection.
        let many = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-H", ":authority: grpc", "-m", "20", "http://\(proxy.outbound)/many"])
        #expect(many.status == 0)
        let lines = many.stdout.split(separator: "\n")
        #expect(lines.count == 20)
        #expect(Set(lines).count == 1, "\(Set(lines))")
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"grpc\",backend=\"grpc\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 23)
        // A request body streams over h2 both ways.
        let post = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: grpc", "--data-binary", String(repeating: "b", count: 100_000), "http://\(proxy.outbound)/upload"])
        #expect(post.stdout.hasPrefix("grpc-v1 /upload 100000 conn="))
    }

    @Test func http1TrailersPassThrough() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        let raw = try curl(["-s", "--raw", "-H", "Host: web", "http://\(proxy.outbound)/trailers"])
        #expect(raw.stdout == "6\r\nhello\n\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n")
    }

    @Test func inboundForwardsHTTPAndOpaqueTCPToTheApp() throws {
        let app = try Upstream("app")
        let proxy = try RunningProxy(config: Self.config([]), app: app.address)
        let output = try curl(["-s", "-H", "eino-client-id: spiffe://forged", "http://\(proxy.inbound)/headers"])
        #expect(output.stdout.contains("host: \(proxy.inbound)"))
        #expect(!output.stdout.contains("eino-client-id"))
        #expect(try proxy.metric("eino_responses_total{direction=\"inbound\",service=\"client\",backend=\"client\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 1)

        let echo = try Background("/usr/bin/env", ["python3", scripts.appendingPathComponent("tcp_echo.py").path])
        echo.killOnDeinit = true
        let port = Int(try echo.line(startingWith: "listening ").dropFirst("listening ".count))!
        let tcpProxy = try RunningProxy(config: Self.config([]), app: "127.0.0.1:\(port)")
        // Binary bytes, then a half-close: the echo comes back and then the close.
        let relayed = try python("tcp_client.py", [tcpProxy.inbound])
        #expect(relayed.status == 0, "\(relayed.stderr)")
        #expect(relayed.stdout == "echoed 262144 bytes, then closed\n")
    }

    @Test func upgradeSwitchesToByteForwardingAfter101() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        let upgraded = try python("upgrade_client.py", [proxy.outbound, "web"])
        #expect(upgraded.status == 0, "\(upgraded.stdout) \(upgraded.stderr)")
        #expect(upgraded.stdout == "HTTP/1.1 101 Switching Protocols\nwelcome from web; echoed 131072 bytes, then closed\n")
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web\",tls=\"false\",status_code=\"101\",classification=\"success\"}") == 1)
        // Through the inbound listener too.
        let proxyIn = try RunningProxy(config: Self.config([]), app: web.address)
        let inbound = try python("upgrade_client.py", [proxyIn.inbound, "app"])
        #expect(inbound.stdout.hasSuffix("echoed 131072 bytes, then closed\n"), "\(inbound.stdout) \(inbound.stderr)")
        // A refused upgrade is an ordinary answer, and the connection closes after it.
        let refused = try curl(["-s", "-i", "-H", "Host: web", "-H", "Upgrade: echo", "http://\(proxy.outbound)/"])
        #expect(refused.stdout.hasPrefix("HTTP/1.1 200 "))
    }

    /// Transparent interception: iptables REDIRECT in a network namespace sends connections
    /// for service virtual IPs to the outbound listener, which finds the service from
    /// `SO_ORIGINAL_DST`: opaque TCP is split per connection, HTTP routed by the virtual IP.
    @Test func redirectedTCPIsSplitPerConnectionAndHTTPRoutedByClusterIP() throws {
        let namespace = try NetworkNamespace()
        let python = ["/usr/bin/env", "python3"]
        let v1 = try namespace.start(python + [scripts.appendingPathComponent("tcp_named.py").path, "db-v1", "0"])
        let v2 = try namespace.start(python + [scripts.appendingPathComponent("tcp_named.py").path, "db-v2", "0"])
        let web = try namespace.start(python + [scripts.appendingPathComponent("upstream.py").path, "web", "0"])
        func port(_ process: Background) throws -> String { String(try process.line(startingWith: "listening ").dropFirst("listening ".count)) }
        let config = Self.config([("db-v1", ["127.0.0.1:\(try port(v1))"]), ("db-v2", ["127.0.0.1:\(try port(v2))"]), ("db", []), ("web", ["127.0.0.1:\(try port(web))"])],
                                 manifests: Self.split([("db-v1", 80), ("db-v2", 20)]).replacingOccurrences(of: "service: web", with: "service: db"))
            .replacingOccurrences(of: "- name: db\n", with: "- name: db\n  clusterIP: 10.96.0.10\n")
            .replacingOccurrences(of: "- name: web\n", with: "- name: web\n  clusterIP: 10.96.0.20\n")
        let proxy = try RunningProxy(config: config, namespace: namespace)
        try namespace.redirectClusterIPs(to: Int(proxy.outbound.split(separator: ":").last!)!)

        // 5432 is an opaque port: no detection, the server speaks first.
        let tcp = try namespace.exec(python + [scripts.appendingPathComponent("tcp_split_client.py").path, "10.96.0.10:5432", "2000"])
        struct Counts: Decodable { var served: [String: Int]; var errors: Int }
        let result = try JSONDecoder().decode(Counts.self, from: Data(tcp.stdout.utf8))
        #expect(result.errors == 0)
        #expect((result.served["db-v1"] ?? 0) + (result.served["db-v2"] ?? 0) == 2000)
        // 80/20 over 2000 connections: one standard deviation is 0.9 points; 4 points is
        // over four of them.
        #expect(abs(Double(result.served["db-v1"] ?? 0) / 2000 - 0.8) <= 0.04, "\(result.served)")

        let http = try namespace.exec(["/usr/bin/curl", "-s", "http://10.96.0.20/"])
        #expect(http.stdout == "web\n")
    }

    @Test func inboundTLSIsRecognisedAndPassedThroughToTheApp() throws {
        // Until mTLS terminates here, a TLS ClientHello on the inbound listener is relayed
        // untouched: the client's TLS session is with the app itself.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("key.pem").path, cert = directory.appendingPathComponent("cert.pem").path
        let made = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/openssl"), [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=app", "-keyout", key, "-out", cert, "-days", "1"])
        #expect(made.status == 0, "\(made.stderr)")
        let probe = try Upstream("probe")
        let port = probe.port
        probe.process.stop(SIGKILL)
        let app = try Background("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-www", "-quiet"])
        app.killOnDeinit = true
        #expect(eventually { (try? curl(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(port)/"]))?.stdout == "200" })
        let proxy = try RunningProxy(config: Self.config([]), app: "127.0.0.1:\(port)")
        let through = try curl(["-sk", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}", "https://\(proxy.inbound)/"])
        #expect(through.stdout.hasPrefix("200 "))
        #expect(try proxy.metric("eino_tcp_open_total{direction=\"inbound\"}") == 1)
    }

    @Test func silentClientIsForwardedOpaquelyAfterTheDetectionTimeout() throws {
        // A server-speaks-first app on a port not listed as opaque: detection waits for the
        // client's first bytes, gives up after --detect-timeout, and relays.
        let app = try Background("/usr/bin/env", ["python3", scripts.appendingPathComponent("tcp_named.py").path, "db", "0"])
        app.killOnDeinit = true
        let port = String(try app.line(startingWith: "listening ").dropFirst("listening ".count))
        let proxy = try RunningProxy(config: Self.config([]), app: "127.0.0.1:\(port)", extra: ["--detect-timeout", "300ms"])
        let start = Date()
        let output = try python("tcp_split_client.py", [proxy.inbound, "3"])
        #expect(output.stdout == "{\"errors\": 0, \"served\": {\"db\": 3}}\n")
        #expect(Date().timeIntervalSince(start) >= 0.9)
    }

    @Test func endpointConnectionLimitAnswersOverloaded() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]), extra: ["--max-connections-per-endpoint", "1", "--threads", "1"])
        let slow = try Background("/usr/bin/curl", ["-s", "-H", "Host: web", "http://\(proxy.outbound)/slow?ms=1500"])
        #expect(try eventually { try proxy.metric("eino_tcp_open_connections{direction=\"outbound\"}") == 1 })
        let second = try curl(["-s", "-i", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(second.stdout.hasPrefix("HTTP/1.1 503 "))
        #expect(headerValue(second.stdout, "eino-error") == "overloaded")
        #expect(slow.waitForExit(timeout: 10) == 0)
        // The connection went back to the pool: the next request reuses it.
        #expect(try curl(["-s", "-H", "Host: web", "http://\(proxy.outbound)/"]).stdout == "web\n")
    }

    @Test func expectContinueIsAnsweredAtOnce() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        let start = Date()
        let output = try curl(["-s", "-H", "Host: web", "-H", "Expect: 100-continue", "--data-binary", String(repeating: "c", count: 5000), "http://\(proxy.outbound)/upload"])
        #expect(output.stdout == "web 5000\n")
        // curl waits one second for a 100 that never comes; the proxy sends it at once.
        #expect(Date().timeIntervalSince(start) < 0.9)
    }

    @Test func gibibyteStreamsBothWaysInLittleMemory() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        let size = 1 << 30
        let upload = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "head -c \(size) /dev/zero | curl -s -T - -H 'Host: web' http://\(proxy.outbound)/upload"])
        #expect(upload.stdout == "web \(size)\n")
        let download = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Host: web", "http://\(proxy.outbound)/bytes?n=\(size)"])
        #expect(download.stdout == "200 \(size)")
        let peak = try proxy.peakRSSKiB()
        #expect(peak < 64 * 1024, "VmHWM \(peak) KiB")
    }

    @Test func sigtermLetsTheInFlightRequestFinishAndRefusesNewConnections() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]))
        let slow = try Background("/usr/bin/curl", ["-s", "-w", " %{http_code}", "-H", "Host: web", "http://\(proxy.outbound)/slow?ms=1500"])
        // Wait until the request is in flight in the proxy.
        #expect(try eventually { try proxy.metric("eino_tcp_open_connections{direction=\"outbound\"}") == 1 })
        proxy.process.signal(SIGTERM)
        // The listener closes: new connections are refused.
        #expect(eventually { (try? curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: web", "http://\(proxy.outbound)/"]))?.status == 7 })
        #expect(slow.waitForExit(timeout: 10) == 0)
        let answer = try slow.line(startingWith: "web")
        #expect(answer == "web\n 200" || answer == "web")
        #expect(proxy.process.waitForExit(timeout: 10) == 0)
    }

    @Test func sigtermLetsAnInFlightHTTP2StreamFinishOnItsSharedUpstream() throws {
        let grpc = try H2Upstream("grpc-v1")
        // Declared grpc: the plain requests below (no gRPC content-type) go as HTTP/2 too.
        let proxy = try RunningProxy(config: Self.config([("grpc", [grpc.address])])
            .replacingOccurrences(of: "- name: grpc\n", with: "- name: grpc\n  appProtocol: grpc\n"))
        let call = try Background("/usr/bin/nghttp", ["-H", ":authority: grpc", "http://\(proxy.outbound)/slow"])
        #expect(try eventually { try proxy.metric("eino_tcp_open_connections{direction=\"outbound\"}") == 1 })
        proxy.process.signal(SIGTERM)
        #expect(call.waitForExit(timeout: 10) == 0)
        #expect(try call.line(startingWith: "grpc-v1") .hasPrefix("grpc-v1 /slow 0 conn="))
        #expect(proxy.process.waitForExit(timeout: 10) == 0)
    }

    @Test func drainTimeoutCutsWhatIsLeftAndStillExitsZero() throws {
        let web = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", [web.address])]), extra: ["--drain-timeout", "500ms"])
        let slow = try Background("/usr/bin/curl", ["-s", "-H", "Host: web", "http://\(proxy.outbound)/slow?ms=5000"])
        #expect(try eventually { try proxy.metric("eino_tcp_open_connections{direction=\"outbound\"}") == 1 })
        let start = Date()
        proxy.process.signal(SIGTERM)
        #expect(proxy.process.waitForExit(timeout: 10) == 0)
        #expect(Date().timeIntervalSince(start) < 3)
        // curl: 52, empty reply from server.
        #expect(slow.waitForExit(timeout: 10) == 52)
        #expect(proxy.process.stderr.contains("drain timeout reached"))
        #expect(!proxy.process.stderr.contains("ERROR"))
    }

    @Test func reloadUnderLoadFailsNothingAndRejectsInvalidFiles() throws {
        let v1 = try Upstream("web-v1")
        let v2 = try Upstream("web-v2")
        let services = [("web-v1", [v1.address]), ("web-v2", [v2.address])]
        let proxy = try RunningProxy(config: Self.config(services, manifests: Self.split([("web-v1", 100), ("web-v2", 0)])), extra: ["--watch-interval", "0"])
        let runner = try Background("/usr/bin/env", ["python3", scripts.appendingPathComponent("load.py").path, proxy.outbound, "web", "4000", "4"])
        runner.killOnDeinit = true
        var version = 1
        for round in 0..<6 {
            let weights = round % 2 == 0 ? [("web-v1", 0), ("web-v2", 100)] : [("web-v1", 100), ("web-v2", 0)]
            try proxy.rewrite(Self.config(services, manifests: Self.split(weights)))
            proxy.process.signal(SIGHUP)
            version += 1
            let expected = version
            #expect(try eventually { try proxy.metric("eino_config_version") == Double(expected) })
        }
        let line = try runner.line(startingWith: "{", timeout: 120)
        let result = try JSONDecoder().decode(LoadResult.self, from: Data(line.utf8))
        #expect(result.errors == 0)
        #expect(result.status == ["200": 4000])

        // An invalid file is rejected, its problems logged, the running config kept.
        try proxy.rewrite(Self.config(services, manifests: Self.split([("web-v1", 0), ("web-v2", 0)])))
        proxy.process.signal(SIGHUP)
        #expect(eventually { proxy.process.stderr.contains("rejected") })
        #expect(proxy.process.stderr.contains("proxy.yaml:"))
        #expect(try proxy.metric("eino_config_version") == Double(version))
        #expect(try proxy.metric("eino_config_reloads_rejected") == 1)
        let after = try curl(["-s", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(after.stdout == "web-v1\n")
    }

    @Test func anInvalidFileStopsTheStartWithEveryProblem() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("proxy.yaml")
        try Self.config([("web", ["127.0.0.1"]), ("db", ["127.0.0.1:99999"])]).write(to: file, atomically: true, encoding: .utf8)
        let output = try EinoProcess.eino(["proxy", "--config", file.path, "--app", "127.0.0.1:1",
                                           "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        #expect(output.status == 1)
        #expect(output.stdout == "")
        #expect(output.stderrLines == [
            "eino proxy: cannot start:",
            "\(file.path):7: ProxyConfig: services[0].endpoints[0].address: expected host:port, got \"127.0.0.1\"",
            "\(file.path):10: ProxyConfig: services[1].endpoints[0].address: port must be a number from 0 to 65535, got \"99999\"",
        ])
        let usage = try EinoProcess.eino(["proxy", "--app", "127.0.0.1:1"])
        #expect(usage.status == 2)
    }

    @Test func fileChangeReloadsAndAdminEndpointsAnswer() throws {
        let v1 = try Upstream("web-v1")
        let v2 = try Upstream("web-v2")
        let proxy = try RunningProxy(config: Self.config([("web", [v1.address])]), extra: ["--watch-interval", "100ms"])
        #expect(try curl(["-s", "http://\(proxy.admin)/live"]).stdout == "live\n")
        #expect(try curl(["-s", "http://\(proxy.admin)/ready"]).stdout == "ready\n")
        let config = try curl(["-s", "http://\(proxy.admin)/config"]).stdout
        #expect(config.contains("\"address\" : \"\(v1.address)\""))
        #expect(config.contains("\"version\" : 1"))
        try proxy.rewrite(Self.config([("web", [v2.address])]))
        #expect(try eventually { try curl(["-s", "-H", "Host: web", "http://\(proxy.outbound)/"]).stdout == "web-v2\n" })
        #expect(try curl(["-s", "http://\(proxy.admin)/config"]).stdout.contains("\"version\" : 2"))
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(proxy.admin)/shutdown"]).stdout == "405")
        #expect(try curl(["-s", "-X", "POST", "http://\(proxy.admin)/shutdown"]).stdout == "shutting down\n")
        #expect(proxy.process.waitForExit(timeout: 10) == 0)
    }
}
