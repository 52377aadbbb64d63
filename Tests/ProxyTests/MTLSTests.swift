import EinoTestSupport
import Foundation
import Testing

/// Two static-mode proxies with mTLS between them, certificates made by `eino identity`.
@Suite(.serialized) struct MTLSTests {
    /// A CA and certificates for `services`, in a temporary directory.
    final class Certificates {
        let directory: URL

        init(services: [String]) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-mtls-\(UUID().uuidString)")
            let ca = directory.appendingPathComponent("ca").path
            try Self.eino(["identity", "init", "--dir", ca])
            for service in services {
                try Self.eino(["identity", "issue", "--dir", ca, "--service", service, "--out", directory.appendingPathComponent("certs").path])
            }
        }

        var caFile: String { directory.appendingPathComponent("ca/ca.pem").path }
        func certFile(_ service: String) -> String { directory.appendingPathComponent("certs/\(service).pem").path }
        func keyFile(_ service: String) -> String { directory.appendingPathComponent("certs/\(service).key").path }

        /// The ProxyConfig `tls:` block presenting `service`'s certificate.
        func tlsBlock(_ service: String) -> String {
            "tls: {caFile: \"\(caFile)\", certFile: \"\(certFile(service))\", keyFile: \"\(keyFile(service))\"}\n"
        }

        private static func eino(_ arguments: [String]) throws {
            let output = try EinoProcess.run(EinoProcess.binary, arguments)
            guard output.status == 0 else { throw HarnessError("eino \(arguments.joined(separator: " ")) failed: \(output.stderr)") }
        }

        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    static func spiffe(_ service: String) -> String { "spiffe://cluster.local/ns/default/sa/\(service)" }

    /// The server-side proxy: holds `certificate`, serves the app at `app`.
    static func serverConfig(_ certificates: Certificates, certificate: String) -> String {
        """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: web, namespace: default}
        \(certificates.tlsBlock(certificate))services:
        - name: web
          endpoints: []

        """
    }

    /// The client-side proxy: reaches `web` at `inbound`, expecting `expected`.
    static func clientConfig(_ certificates: Certificates, inbound: String, expected: String?) -> String {
        """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client, namespace: default}
        \(certificates.tlsBlock("client"))services:
        - name: web
          endpoints:
          - address: "\(inbound)"
        \(expected.map { "    identity: \"\($0)\"\n" } ?? "")
        """
    }

    @Test func requestCrossesMTLSAndTheAppSeesTheClientIdentity() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")))
        // A forged identity from the app is replaced by the verified one.
        let output = try curl(["-s", "-i", "-H", "Host: web", "-H", "eino-client-id: spiffe://cluster.local/ns/default/sa/admin",
                               "http://\(client.outbound)/headers"])
        #expect(output.stdout.hasPrefix("HTTP/1.1 200"), "\(output.stdout)\n\(client.process.stderr)\n\(server.process.stderr)")
        #expect(output.stdout.contains("eino-client-id: \(Self.spiffe("client"))"))
        #expect(!output.stdout.contains("sa/admin"))
        // The app was spoken to in HTTP/1.1 and bodies stream through (chunked from the app).
        let chunked = try curl(["-s", "-H", "Host: web", "http://\(client.outbound)/chunked"])
        #expect(chunked.stdout == "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n")
        let body = try curl(["-s", "-H", "Host: web", "-d", "hello", "http://\(client.outbound)/"])
        #expect(body.stdout == "web-app 5\n")
        // Both sides count the three exchanges as over mTLS.
        #expect(try client.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web\",tls=\"true\",status_code=\"200\",classification=\"success\"}") == 3)
        #expect(try server.metric("eino_responses_total{direction=\"inbound\",service=\"web\",backend=\"web\",tls=\"true\",status_code=\"200\",classification=\"success\"}") == 3)
    }

    /// Mesh connections leave header checks to the proxy (ReceivedFields): a peer's request
    /// with a field no HTTP/2 stack may send is answered 400 and never reaches the app.
    @Test func aPeerRequestWithAMalformedFieldIsRefused() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        func send(_ name: String, _ value: String) throws -> [String] {
            let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/python3"), [
                scripts.appendingPathComponent("h2_mesh_request.py").path, server.inbound,
                certificates.certFile("client"), certificates.keyFile("client"), certificates.caFile, name, value])
            return output.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try send("x-fine", "ok") == ["200", "-"])
        #expect(try send("x-injected", "a\\r\\nx-smuggled: 1") == ["400", "bad request"])
        #expect(try send("X-Upper", "a") == ["400", "bad request"])
        #expect(try send("x bad", "a") == ["400", "bad request"])
        #expect(try send("x-nul", "a\\x00b") == ["400", "bad request"])
        #expect(try server.metric("eino_proxy_errors_total{direction=\"inbound\",cause=\"bad_request\"}") == 4)
    }

    @Test func aProxyHoldingAnotherIdentityIsRefused() throws {
        let certificates = try Certificates(services: ["client", "db"])
        let app = try Upstream("db-app")
        let impostor = try RunningProxy(config: Self.serverConfig(certificates, certificate: "db"), app: app.address)
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: impostor.inbound, expected: Self.spiffe("web")))
        let output = try curl(["-s", "-i", "-H", "Host: web", "http://\(client.outbound)/"])
        #expect(output.stdout.hasPrefix("HTTP/1.1 502"), "\(output.stdout)")
        #expect(headerValue(output.stdout, "eino-error") == "upstream identity mismatch: expected \(Self.spiffe("web")), got \(Self.spiffe("db"))")
        #expect(!output.stdout.contains("db-app"))
        #expect(try client.metric("eino_proxy_errors_total{direction=\"outbound\",cause=\"upstream_identity_mismatch\"}") == 1)
    }

    @Test func opensslWithoutAClientCertificateIsRefused() throws {
        let certificates = try Certificates(services: ["web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        // Under TLS 1.3 the refusal (certificate required) shows only once the client reads.
        let script = "printf 'GET / HTTP/1.1\\r\\nHost: web\\r\\n\\r\\n' | (cat; sleep 1) | openssl s_client -connect \(server.inbound) -tls1_3 -alpn h2 -CAfile \(certificates.caFile) 2>&1"
        let output = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script])
        #expect(!output.stdout.contains("web-app"))
        #expect(output.stdout.contains("alert") || output.stdout.contains("certificate required"), "\(output.stdout)")
        // TLS 1.2 is refused at once.
        let old = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "openssl s_client -connect \(server.inbound) -tls1_2 </dev/null 2>&1"])
        #expect(old.status != 0)
    }

    @Test func twoHundredConcurrentRequestsShareOneTLSConnection() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        // One event loop: upstream connections are per loop, so this makes "one" exact.
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")),
                                      extra: ["--threads", "1"])
        let result = try load(client.outbound, authority: "web", count: 200, connections: 200, path: "/slow?ms=300")
        #expect(result.errors == 0)
        #expect(result.status == ["200": 200])
        #expect(try server.metric("eino_tcp_open_total{direction=\"inbound\"}") == 1)
        #expect(try client.metric("eino_tcp_open_total{direction=\"outbound\"}") == 200)
    }

    /// Peer certificates are verified on Swift's concurrency pool, which has one thread when
    /// the proxy runs on one CPU. While `eino proxy` blocked that thread waiting for shutdown,
    /// every new mTLS connection waited for libdispatch's once-a-second check to add a thread:
    /// 0–1 s on each side, 1.8 s seen on the first request after an idle timeout. Both sides
    /// verify on every new connection here (one server, two fresh clients); normal is 10–30 ms.
    @Test func newMTLSConnectionsOfProxiesPinnedToOneCPUDoNotWaitForAThread() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address, cpu: 0)
        for _ in 0..<2 {
            let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")), cpu: 0)
            let output = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", "Host: web", "http://\(client.outbound)/"])
            let fields = output.stdout.split(separator: " ")
            #expect(fields.first == "200", "\(output.stdout)")
            let seconds = fields.count == 2 ? Double(fields[1]) ?? .infinity : .infinity
            #expect(seconds < 0.5, "first request over a new mTLS connection took \(seconds) s")
        }
    }

    @Test func plaintextFromLoopbackStillWorksWithCredentials() throws {
        // Strict mode refuses plaintext only from non-loopback peers; a local client still
        // reaches the app through the inbound port.
        let certificates = try Certificates(services: ["web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        let output = try curl(["-s", "-H", "Host: web", "-H", "eino-client-id: forged", "http://\(server.inbound)/headers"])
        #expect(output.stdout.contains("host: web"))
        #expect(!output.stdout.contains("eino-client-id"))
    }

    /// The host's first global IPv4 address (not loopback), if it has one.
    static func hostAddress() throws -> String? {
        let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["-4", "-o", "addr", "show", "scope", "global"])
        for line in output.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let index = fields.firstIndex(of: "inet"), index + 1 < fields.count {
                return String(fields[index + 1].split(separator: "/")[0])
            }
        }
        return nil
    }

    @Test func strictModeRefusesPlaintextFromOtherHostsAndPermissiveAcceptsIt() throws {
        guard let host = try Self.hostAddress() else { return }
        let certificates = try Certificates(services: ["web"])
        let app = try Upstream("web-app")
        for mode in ["strict", "permissive"] {
            // The last --inbound wins: listen on the host's address, so the client is not loopback.
            let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address,
                                          extra: ["--inbound", "\(host):0", "--inbound-mode", mode])
            #expect(server.inbound.hasPrefix(host))
            let output = try curl(["-s", "-m", "5", "-H", "Host: web", "http://\(server.inbound)/"])
            if mode == "strict" {
                #expect(output.status != 0 && !output.stdout.contains("web-app"), "\(output.stdout)")
                #expect(try server.metric("eino_proxy_errors_total{direction=\"inbound\",cause=\"plaintext_refused\"}") == 1)
            } else {
                #expect(output.stdout == "web-app\n", "\(output.stdout) \(output.stderr)")
            }
        }
    }

    /// An HTTP/1.0-style request sent as opaque bytes over mTLS (ALPN `eino-tcp`), as a peer
    /// proxy holding `service`'s certificate would; what came back.
    static func opaqueRequest(to inbound: String, as service: String, _ certificates: Certificates) throws -> String {
        let script = "printf 'GET / HTTP/1.1\\r\\nHost: web\\r\\nConnection: close\\r\\n\\r\\n' | (cat; sleep 1) | openssl s_client -quiet -connect \(inbound) -alpn eino-tcp -cert \(certificates.certFile(service)) -key \(certificates.keyFile(service)) -CAfile \(certificates.caFile) 2>/dev/null"
        return try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script]).stdout
    }

    @Test func opaqueTCPOverMTLSIsRelayedToTheApp() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address)
        // A peer proxy's opaque connection: client certificate, ALPN eino-tcp, bytes relayed as they are.
        let output = try Self.opaqueRequest(to: server.inbound, as: "client", certificates)
        #expect(output.hasPrefix("HTTP/1.0 200") || output.hasPrefix("HTTP/1.1 200"), "\(output)")
        #expect(output.hasSuffix("web-app\n"))
    }

    @Test func rotatedCertificateFilesServeNewConnections() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address,
                                      extra: ["--watch-interval", "100ms"])
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")))
        func served() throws -> String {
            let script = "openssl s_client -connect \(server.inbound) -alpn h2 -cert \(certificates.certFile("client")) -key \(certificates.keyFile("client")) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
            return try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script]).stdout
        }
        func onFile() throws -> String {
            try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "openssl x509 -noout -fingerprint -sha256 -in \(certificates.certFile("web"))"]).stdout
        }
        let before = try onFile()
        #expect(try served() == before)
        #expect(try curl(["-s", "-H", "Host: web", "http://\(client.outbound)/"]).stdout == "web-app\n")
        // Re-issue in place, as an operator's cron job would.
        let issue = try EinoProcess.run(EinoProcess.binary, ["identity", "issue", "--dir", certificates.directory.appendingPathComponent("ca").path,
                                                             "--service", "web", "--out", certificates.directory.appendingPathComponent("certs").path])
        #expect(issue.status == 0, "\(issue.stderr)")
        let after = try onFile()
        #expect(after != before)
        #expect(try eventually(timeout: 5) { try served() == after })
        // The client proxy's open connection carries on; a request still goes through.
        #expect(try curl(["-s", "-H", "Host: web", "http://\(client.outbound)/"]).stdout == "web-app\n")
    }

    @Test func trafficTargetLetsListedSourcesThroughAndForbidsOthers() throws {
        let certificates = try Certificates(services: ["client", "intruder", "web"])
        let app = try Upstream("web-app")
        // `client` may send GET requests (HTTPRouteGroup web-reads, match get-all), nothing else.
        let policy = try String(contentsOf: EinoProcess.repositoryRoot.appendingPathComponent("manifests/examples/traffic-target.yaml"), encoding: .utf8)
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web") + "---\n" + policy, app: app.address)
        let allowed = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")))
        let ok = try curl(["-s", "-H", "Host: web", "http://\(allowed.outbound)/"])
        #expect(ok.stdout == "web-app\n")
        // The same source, a request outside the rule's matches.
        let post = try curl(["-s", "-i", "-H", "Host: web", "-d", "x", "http://\(allowed.outbound)/"])
        #expect(post.stdout.hasPrefix("HTTP/1.1 403"), "\(post.stdout)")
        #expect(headerValue(post.stdout, "eino-error") == "forbidden")
        #expect(!post.stdout.contains("web-app"))
        let intruderConfig = Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web"))
            .replacingOccurrences(of: "certs/client.", with: "certs/intruder.")
            .replacingOccurrences(of: "service: client", with: "service: intruder")
        let intruder = try RunningProxy(config: intruderConfig)
        let denied = try curl(["-s", "-i", "-H", "Host: web", "http://\(intruder.outbound)/"])
        #expect(denied.stdout.hasPrefix("HTTP/1.1 403"), "\(denied.stdout)")
        #expect(headerValue(denied.stdout, "eino-error") == "forbidden")
        #expect(!denied.stdout.contains("web-app"))
        // Plaintext from loopback has no verified identity: not a listed source either.
        let local = try curl(["-s", "-i", "-H", "Host: web", "http://\(server.inbound)/"])
        #expect(local.stdout.hasPrefix("HTTP/1.1 403"))
        // An HTTPRouteGroup rule admits no opaque TCP, even from a listed source.
        #expect(try Self.opaqueRequest(to: server.inbound, as: "client", certificates) == "")
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"http\",decision=\"allow\"}") == 1)
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"http\",decision=\"deny\"}") == 3)
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"deny\"}") == 1)
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"allow\"}") == 0)
        #expect(try server.metric("eino_proxy_errors_total{direction=\"inbound\",cause=\"forbidden\"}") == 4)
        // No TrafficTarget names the client proxy's identity: nothing is decided there.
        #expect(try allowed.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"http\",decision=\"allow\"}") == 0)
    }

    /// A TrafficTarget letting `client` reach `web` over one TCPRoute, and no one else.
    static let tcpFromClientOnly = """
        ---
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: TCPRoute
        metadata: {name: web-tcp}
        spec: {}
        ---
        apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: {name: web-tcp-from-client}
        spec:
          destination: {kind: ServiceAccount, name: web, namespace: default}
          sources: [{kind: ServiceAccount, name: client, namespace: default}]
          rules: [{kind: TCPRoute, name: web-tcp}]

        """

    @Test func aTCPRouteRuleAdmitsOpaqueConnectionsFromItsSources() throws {
        let certificates = try Certificates(services: ["client", "intruder", "web"])
        let app = try Upstream("web-app")
        let policy = Self.tcpFromClientOnly
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web") + policy, app: app.address)
        let output = try Self.opaqueRequest(to: server.inbound, as: "client", certificates)
        #expect(output.hasSuffix("web-app\n"), "\(output)")
        #expect(try Self.opaqueRequest(to: server.inbound, as: "intruder", certificates) == "")
        // A TCPRoute rule covers HTTP too: the listed source's requests pass whatever they are.
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")))
        #expect(try curl(["-s", "-H", "Host: web", "-d", "hello", "http://\(client.outbound)/"]).stdout == "web-app 5\n")
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"allow\"}") == 1)
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"deny\"}") == 1)
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"http\",decision=\"allow\"}") == 1)
    }

    /// The outbound opaque path: a redirected connection to a service's virtual IP whose
    /// endpoint is a peer proxy goes over mTLS (ALPN eino-tcp: a virtual IP's port is not the
    /// app's, so no port header) and reaches the peer's app.
    @Test func redirectedOpaqueTCPCrossesMTLSToAnEcho() throws {
        let namespace = try NetworkNamespace()
        let certificates = try Certificates(services: ["client", "web"])
        let echo = try namespace.start(["/usr/bin/env", "python3", scripts.appendingPathComponent("tcp_echo.py").path])
        let echoPort = String(try echo.line(startingWith: "listening ").dropFirst("listening ".count))
        // The server admits `client`'s TCP only: an allow decision proves it verified who called.
        let policy = Self.tcpFromClientOnly
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web") + policy,
                                      app: "127.0.0.1:\(echoPort)", namespace: namespace)
        let clientConfig = Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web"))
            .replacingOccurrences(of: "- name: web\n", with: "- name: web\n  clusterIP: 10.96.0.30\n")
        let client = try RunningProxy(config: clientConfig, namespace: namespace)
        try namespace.redirectClusterIPs(to: Int(client.outbound.split(separator: ":").last!)!)

        // 5432 is an opaque port: relayed without protocol detection. 256 KiB of every byte value,
        // then a half-close right away — while the server may still be verifying the client's
        // certificate. Ten times, as that race goes either way.
        let runs = 10
        for _ in 0..<runs {
            let output = try namespace.exec(["/usr/bin/env", "python3", scripts.appendingPathComponent("tcp_client.py").path, "10.96.0.30:5432"])
            #expect(output.stdout == "echoed 262144 bytes, then closed\n", "\(output.stdout)\(output.stderr)\n\(client.process.stderr)\n\(server.process.stderr)")
        }
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"allow\"}") == Double(runs))
        #expect(try server.metric("eino_policy_decisions_total{direction=\"inbound\",protocol=\"tcp\",decision=\"deny\"}") == 0)
        #expect(try client.metric("eino_tcp_open_total{direction=\"outbound\"}") == Double(runs))
        #expect(try server.metric("eino_tcp_open_total{direction=\"inbound\"}") == Double(runs))
        // The app's side counts the plain bytes; the server's inbound side carried TLS records, more.
        #expect(try eventually { try client.metric("eino_tcp_read_bytes_total{direction=\"outbound\"}") == Double(runs * 262_144) })
        #expect(try client.metric("eino_tcp_write_bytes_total{direction=\"outbound\"}") == Double(runs * 262_144))
        #expect(try eventually { try server.metric("eino_tcp_read_bytes_total{direction=\"inbound\"}") > Double(runs * 262_144) })
    }

    /// Static-mode rotation under a steady load: the server proxy's certificate files are
    /// re-issued twice while a sequential and a concurrent load run through both proxies.
    @Test func certificatesRotateTwiceUnderSteadyLoadWithoutAFailedRequest() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address,
                                      extra: ["--watch-interval", "100ms"])
        // One event loop: the client proxy carries everything on one connection to the server.
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: server.inbound, expected: Self.spiffe("web")),
                                      extra: ["--threads", "1"])
        var probes = 0
        /// The serial of the certificate a new connection to the server is shown.
        func presented() throws -> String {
            probes += 1
            let script = "openssl s_client -connect \(server.inbound) -alpn h2 -cert \(certificates.certFile("client")) -key \(certificates.keyFile("client")) </dev/null 2>/dev/null | openssl x509 -noout -serial"
            return try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script]).stdout
        }
        func onFile() throws -> String {
            try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "openssl x509 -noout -serial -in \(certificates.certFile("web"))"]).stdout
        }
        let okSeries = "eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web\",tls=\"true\",status_code=\"200\",classification=\"success\"}"
        /// Waits until `more` further requests have been answered.
        func loadFlows(_ more: Double) throws -> Bool {
            let start = try client.metric(okSeries)
            return try eventually(timeout: 20) { try client.metric(okSeries) >= start + more }
        }

        var serials = [try onFile()]
        #expect(try presented() == serials[0])
        let stop = certificates.directory.appendingPathComponent("stop-load").path
        func startLoad(connections: Int) throws -> Background {
            try Background("/usr/bin/env", ["LOAD_UNTIL_FILE=\(stop)", "python3", scripts.appendingPathComponent("load.py").path,
                                            client.outbound, "web", "1", String(connections)])
        }
        let sequential = try startLoad(connections: 1)
        let concurrent = try startLoad(connections: 16)
        sequential.killOnDeinit = true
        concurrent.killOnDeinit = true
        #expect(try loadFlows(100))
        for _ in 1...2 {
            let issue = try EinoProcess.run(EinoProcess.binary, ["identity", "issue", "--dir", certificates.directory.appendingPathComponent("ca").path,
                                                                 "--service", "web", "--ttl", "10m", "--out", certificates.directory.appendingPathComponent("certs").path])
            #expect(issue.status == 0, "\(issue.stderr)")
            serials.append(try onFile())
            #expect(serials.last != serials[serials.count - 2])
            #expect(try eventually(timeout: 10) { try presented() == serials.last! })
            #expect(try loadFlows(100))
        }
        #expect(FileManager.default.createFile(atPath: stop, contents: nil))
        var total = 0
        for load in [sequential, concurrent] {
            let line = try load.line(startingWith: "{", timeout: 30)
            let result = try JSONDecoder().decode(LoadResult.self, from: Data(line.utf8))
            #expect(result.errors == 0, "\(line)")
            #expect(result.status.keys.sorted() == ["200"], "\(line)")
            total += result.status["200"] ?? 0
        }
        #expect(total >= 300)
        #expect(Double(total) == (try client.metric(okSeries)))
        // The client proxy's connection, opened before the first rotation, carried the whole
        // load: the server accepted it and the openssl probes, nothing else.
        #expect(try server.metric("eino_tcp_open_total{direction=\"inbound\"}") == Double(1 + probes))
    }

    /// A peer proxy that drains (SIGTERM) sends GOAWAY: its open stream finishes, and the
    /// next request goes on a new connection — here to the proxy that took over its port.
    @Test func afterAPeerSendsGoAwayNewRequestsOpenANewConnection() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let appA = try Upstream("web-a")
        let appB = try Upstream("web-b")
        let serverA = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: appA.address,
                                       extra: ["--drain-timeout", "20s"])
        let client = try RunningProxy(config: Self.clientConfig(certificates, inbound: serverA.inbound, expected: Self.spiffe("web")),
                                      extra: ["--threads", "1"])
        let port = String(serverA.inbound.split(separator: ":").last!)
        func sockets(_ filter: String) throws -> Int {
            let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/ss"), ["-Htn"] + filter.split(separator: " ").map(String.init))
            return output.stdout.split(separator: "\n").count
        }
        // A request held open on the connection to A: it has reached A's app once the app has
        // a connection.
        let slow = try Background("/usr/bin/curl", ["-s", "-H", "Host: web", "http://\(client.outbound)/slow?ms=3000"])
        slow.killOnDeinit = true
        #expect(try eventually { try sockets("state established sport = :\(appA.port)") == 1 })
        serverA.process.signal(SIGTERM)
        // A stops listening at once (and sends GOAWAY); B takes its address.
        #expect(try eventually { try sockets("-l sport = :\(port)") == 0 })
        #expect(eventually { client.process.stderr.contains("sent GOAWAY") }, "\(client.process.stderr)")
        let serverB = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: appB.address,
                                       extra: ["--inbound", "127.0.0.1:\(port)"])
        #expect(serverB.inbound == serverA.inbound)
        let next = try curl(["-s", "-i", "-H", "Host: web", "http://\(client.outbound)/"])
        #expect(next.stdout.hasPrefix("HTTP/1.1 200"), "\(next.stdout)\n\(client.process.stderr)")
        #expect(next.stdout.hasSuffix("web-b\n"))
        #expect(try serverB.metric("eino_tcp_open_total{direction=\"inbound\"}") == 1)
        // The stream that was open on A finished there, and A then exited on its own.
        #expect(try slow.line(startingWith: "web-") == "web-a")
        #expect(slow.waitForExit(timeout: 10) == 0)
        #expect(serverA.process.waitForExit(timeout: 10) == 0)
    }

    /// The inbound side resumes TLS 1.3 sessions from tickets (BoringSSL's defaults) for a
    /// client that keeps them; a new certificate means a new context whose ticket keys are
    /// new, so older tickets no longer resume.
    @Test func inboundResumesATicketUntilItsCertificateRotates() throws {
        let certificates = try Certificates(services: ["client", "web"])
        let app = try Upstream("web-app")
        let server = try RunningProxy(config: Self.serverConfig(certificates, certificate: "web"), app: app.address,
                                      extra: ["--watch-interval", "100ms"])
        let session = certificates.directory.appendingPathComponent("session.pem").path
        /// A request over eino-tcp; returns the handshake kind line ("New, …" / "Reused, …") and the answer.
        func exchange(_ sessionFlag: String) throws -> (kind: String, body: String) {
            let script = "printf 'GET / HTTP/1.1\\r\\nHost: web\\r\\nConnection: close\\r\\n\\r\\n' | (cat; sleep 1) | openssl s_client -connect \(server.inbound) -alpn eino-tcp -cert \(certificates.certFile("client")) -key \(certificates.keyFile("client")) -CAfile \(certificates.caFile) \(sessionFlag) \(session) 2>/dev/null"
            let output = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script]).stdout
            let kind = output.split(separator: "\n").first { $0.hasPrefix("New, ") || $0.hasPrefix("Reused, ") }.map(String.init) ?? ""
            return (kind, output.contains("web-app\n") ? "web-app" : output)
        }
        let first = try exchange("-sess_out")
        #expect(first.kind.hasPrefix("New, TLSv1.3"), "\(first)")
        #expect(first.body == "web-app")
        let resumed = try exchange("-sess_in")
        #expect(resumed.kind.hasPrefix("Reused, TLSv1.3"), "\(resumed)")
        #expect(resumed.body == "web-app")
        // Re-issue the server's certificate and wait until new connections are shown it.
        let before = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "openssl x509 -noout -serial -in \(certificates.certFile("web"))"]).stdout
        let issue = try EinoProcess.run(EinoProcess.binary, ["identity", "issue", "--dir", certificates.directory.appendingPathComponent("ca").path,
                                                             "--service", "web", "--out", certificates.directory.appendingPathComponent("certs").path])
        #expect(issue.status == 0)
        #expect(try eventually(timeout: 5) {
            let script = "openssl s_client -connect \(server.inbound) -alpn h2 -cert \(certificates.certFile("client")) -key \(certificates.keyFile("client")) </dev/null 2>/dev/null | openssl x509 -noout -serial"
            let served = try EinoProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script]).stdout
            return !served.isEmpty && served != before
        })
        let afterRotation = try exchange("-sess_in")
        #expect(afterRotation.kind.hasPrefix("New, TLSv1.3"), "\(afterRotation)")
        #expect(afterRotation.body == "web-app")
    }
}
