import EinoTestSupport
import Foundation
import Testing

/// The deploy journeys on pods made of network namespaces (Pods.swift): apps call each
/// other by pod IP and port, as they would without a mesh, and `eino init`'s rules hand the
/// calls to the sidecars. Skips (saying so) where network namespaces are not permitted.
@Suite(.serialized) struct PodsTests {
    @Test func appsCallEachOtherTransparently() throws {
        guard let pods = try Pods.make() else { return }
        defer {
            pods.tearDown()
            // Deleting a namespace takes its veth with it, shortly after.
            #expect((try? poll(timeout: 10, "no pods left") { try Pods.leftovers().isEmpty ? true : nil }) == true,
                    "left on the machine: \((try? Pods.leftovers()) ?? [])")
        }
        let a = try pods.pod("a"), b1 = try pods.pod("b1"), b2 = try pods.pod("b2"), outside = try pods.pod("x")
        try pods.app(b1, name: "web-v1")
        try pods.app(b2, name: "web-v2")
        try pods.app(outside, name: "outside")
        let sidecars = [try pods.mesh(b1, as: "web-v1"), try pods.mesh(b2, as: "web-v2"), try pods.mesh(a, as: "client", app: "127.0.0.1:9")]
        _ = try poll(timeout: 20, "pod a's proxy to know both web pods; sidecars said: \(sidecars.map(\.stderr))") {
            let config = try pods.exec(a, ["/usr/bin/curl", "-s", "http://127.0.0.1:7191/config"]).stdout
            return config.contains("\"\(b1.ip):7143\"") && config.contains("\"\(b2.ip):7143\"") ? true : nil
        }

        /// Calls from pod a's app, as root (not the proxy's uid): one line per call, the
        /// status and the body's first line.
        func calls(_ count: Int, _ url: String) throws -> [String] {
            let urls = Array(repeating: ["-o", "/dev/null", url], count: count).flatMap { $0 }
            return try pods.exec(a, ["/usr/bin/curl", "-s", "-m", "10", "-w", "%{http_code} %header{x-served-by}\\n"] + urls).stdoutLines
        }
        let scripts = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts").path + "/"
        let inboundB1 = #"eino_requests_total{direction="inbound",service="web-v1",backend="web-v1",tls="true"}"#
        let unmeshedHTTP = #"eino_unmeshed_total{direction="outbound",protocol="http"}"#

        // Pod a's app calls pod b1's app by IP and port: intercepted at both ends, over mTLS.
        let headers = try pods.exec(a, ["/usr/bin/curl", "-s", "-m", "10", "http://\(b1.ip):8080/headers"])
        #expect(headers.stdoutLines.contains("eino-client-id: spiffe://cluster.local/ns/default/sa/client"), "\(headers)")
        #expect(try pods.metric(b1, inboundB1) == 1)
        #expect(try pods.metric(a, #"eino_requests_total{direction="outbound",service="web-v1",backend="web-v1",tls="true"}"#) == 1)
        #expect(try calls(5, "http://\(b1.ip):8080/") == Array(repeating: "200 web-v1", count: 5))
        #expect(try pods.metric(b1, inboundB1) == 6)
        #expect(try pods.metric(a, unmeshedHTTP) == 0)

        // A server outside the mesh (no proxy in its pod) is reached as it is, and counted.
        #expect(try calls(2, "http://\(outside.ip):8080/") == ["200 outside", "200 outside"])
        #expect(try pods.metric(a, unmeshedHTTP) == 2)

        // B1's app on a second port: the call reaches that port (it travels in eino-dst-port,
        // which the app never sees).
        try pods.app(b1, name: "web-v1-other", port: 9090)
        #expect(try calls(2, "http://\(b1.ip):9090/") == ["200 web-v1-other", "200 web-v1-other"])
        let other = try pods.exec(a, ["/usr/bin/curl", "-s", "-m", "10", "http://\(b1.ip):9090/headers"]).stdoutLines
        #expect(other.contains("eino-client-id: spiffe://cluster.local/ns/default/sa/client"), "\(other)")
        #expect(!other.contains { $0.hasPrefix("eino-dst-port") }, "\(other)")
        #expect(try pods.metric(b1, inboundB1) == 9)
        // The proxy's own ports are not the app's: b1's admin stays out of reach.
        let shutdown = try pods.exec(a, ["/usr/bin/curl", "-s", "-m", "10", "-X", "POST", "-o", "/dev/null", "-w", "%{http_code} %header{eino-error}",
                                         "http://\(b1.ip):7191/shutdown"])
        #expect(shutdown.stdout == "403 forbidden")
        #expect(try pods.exec(b1, ["/usr/bin/curl", "-s", "http://127.0.0.1:7191/ready"]).stdout == "ready\n")

        // Opaque TCP across pods: an echo on another port of b1, relayed over mTLS (b1's
        // strict inbound would refuse plaintext from another pod) to that port.
        let echo = try pods.start(b1, ["/usr/bin/python3", scripts + "tcp_echo.py"])
        let echoPort = try echo.waitForLine(startingWith: "listening ").dropFirst("listening ".count)
        let echoed = try pods.exec(a, ["/usr/bin/python3", scripts + "tcp_client.py", "\(b1.ip):\(echoPort)"])
        #expect(echoed.stdout == "echoed 262144 bytes, then closed\n", "\(echoed); sidecars said: \(sidecars.map(\.stderr))")
        #expect(try pods.metric(b1, #"eino_proxy_errors_total{direction="inbound",cause="plaintext_refused"}"#) == 0)
        #expect(try pods.metric(a, #"eino_unmeshed_total{direction="outbound",protocol="tcp"}"#) == 0)

        // IPv6, through ip6tables and the proxies' IPv6 listeners: a call to pod x's IPv6
        // address passes through (SO_ORIGINAL_DST for IPv6); one to b1's naming web-v1 is
        // routed by its authority over mTLS to b1's app on the port called.
        #expect(try calls(1, "http://[\(outside.ipv6)]:8080/") == ["200 outside"])
        #expect(try pods.metric(a, unmeshedHTTP) == 3)
        let byAuthority = try pods.exec(a, ["/usr/bin/curl", "-s", "-m", "10", "-H", "Host: web-v1", "http://[\(b1.ipv6)]:9090/"])
        #expect(byAuthority.stdout == "web-v1-other\n", "\(byAuthority)")
        // Plaintext to b1's IPv6 address from the pod without a proxy: redirected to b1's
        // inbound IPv6 listener, which refuses it (strict mode) and counts it.
        let plaintext = try pods.exec(outside, ["/usr/bin/curl", "-s", "-m", "10", "http://[\(b1.ipv6)]:8080/"])
        #expect(plaintext.status == 52, "curl: empty reply expected, got \(plaintext)")
        #expect(try pods.metric(b1, #"eino_proxy_errors_total{direction="inbound",cause="plaintext_refused"}"#) == 1)

        // `eino apply` of a TrafficSplit moves the calls to b1's address over to web-v2.
        let split = """
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: web-move}
        spec: {service: web-v1, backends: [{service: web-v2, weight: 100}]}
        """
        let servedByB1 = try pods.metric(b1, inboundB1)
        #expect(try pods.eino(["apply", "-f", "-"], stdin: split).status == 0)
        _ = try poll(timeout: 10, "the split in pod a; sidecars said: \(sidecars.map(\.stderr))") {
            try calls(1, "http://\(b1.ip):8080/") == ["200 web-v2"] ? true : nil
        }
        #expect(try calls(10, "http://\(b1.ip):8080/") == Array(repeating: "200 web-v2", count: 10))
        #expect(try pods.metric(b1, inboundB1) == servedByB1)

        // A TrafficMirror instead: web-v1 answers, web-v2 gets a copy of each call.
        #expect(try pods.eino(["delete", "trafficsplits", "web-move"]).status == 0)
        let mirror = """
        apiVersion: mirror.eino.dev/v1alpha1
        kind: TrafficMirror
        metadata: {name: web-shadow}
        spec: {service: web-v1, mirrors: [{service: web-v2, percent: 100}]}
        """
        #expect(try pods.eino(["apply", "-f", "-"], stdin: mirror).status == 0)
        func mirrored() throws -> Int {
            let page = try pods.exec(a, ["/usr/bin/curl", "-s", "http://127.0.0.1:7191/mirrors"]).stdout
            let json = try JSONSerialization.jsonObject(with: Data(page.utf8)) as? [String: Any]
            let mirrors = json?["mirrors"] as? [[String: Any]] ?? []
            return mirrors.first { $0["service"] as? String == "web-v1" && $0["mirror"] as? String == "web-v2" }?["sent"] as? Int ?? 0
        }
        _ = try poll(timeout: 10, "the mirror in pod a") { try calls(1, "http://\(b1.ip):8080/") == ["200 web-v1"] && mirrored() > 0 ? true : nil }
        let before = try mirrored()
        let copiesBefore = try pods.metric(b2, #"eino_requests_total{direction="inbound",service="web-v2",backend="web-v2",tls="true"}"#)
        #expect(try calls(10, "http://\(b1.ip):8080/") == Array(repeating: "200 web-v1", count: 10))
        _ = try poll(timeout: 10, "ten more copies sent") { try mirrored() == before + 10 ? true : nil }
        _ = try poll(timeout: 10, "ten more copies at web-v2") {
            try pods.metric(b2, #"eino_requests_total{direction="inbound",service="web-v2",backend="web-v2",tls="true"}"#) == copiesBefore + 10 ? true : nil
        }
    }
}
