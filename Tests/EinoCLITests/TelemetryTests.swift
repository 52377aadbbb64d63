import EinoTestSupport
import Foundation
import Testing

/// Telemetry end to end: real sidecars report to a real control plane, `eino stat` and the
/// control plane's `/metrics` show the aggregate (docs/telemetry.md).
@Suite(.serialized) struct TelemetryTests {
    /// A row of `eino stat -o json`, exactly the fields CLI.md promises.
    struct StatRow: Decodable {
        var service: String
        var backend: String
        var requests: UInt64
        var successRate: Double
        var rps: Double
        var latencyMsP50: Double
        var latencyMsP95: Double
        var latencyMsP99: Double

        enum CodingKeys: String, CodingKey {
            case service, backend, requests, rps
            case successRate = "success_rate"
            case latencyMsP50 = "latency_ms_p50"
            case latencyMsP95 = "latency_ms_p95"
            case latencyMsP99 = "latency_ms_p99"
        }
    }

    /// A control plane and sidecars reporting every 200 ms, all on loopback.
    final class Mesh {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("eino-telemetry-\(UUID().uuidString)").path
        let control: ServerProcess
        let url: String
        private var processes: [ServerProcess] = []

        init() throws {
            control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:0"])
            url = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
        }

        func eino(_ arguments: [String]) throws -> EinoProcess.Output {
            try EinoProcess.eino(arguments + ["--control", url, "--data-dir", dataDir])
        }

        /// A python app from Tests/Scripts/upstream.py; its address.
        func app(_ name: String) throws -> String {
            let app = try ServerProcess(URL(fileURLWithPath: "/usr/bin/python3"), [scripts + "/upstream.py", name, "0"])
            processes.append(app)
            return "127.0.0.1:" + (try app.waitForLine(startingWith: "listening ").dropFirst("listening ".count))
        }

        /// A port nothing listens on.
        func deadAddress() throws -> String {
            let app = try ServerProcess(URL(fileURLWithPath: "/usr/bin/python3"), [scripts + "/upstream.py", "gone", "0"])
            let address = "127.0.0.1:" + (try app.waitForLine(startingWith: "listening ").dropFirst("listening ".count))
            app.kill()
            try app.waitForExit()
            return address
        }

        /// A sidecar joined with a fresh token; its ready line's fields.
        func sidecar(_ service: String, app: String, advertise: String? = nil) throws -> (outbound: String, inbound: String, admin: String) {
            let token = try eino(["token", "create", "--service", service]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let proxy = try ServerProcess.eino([
                "proxy", "--service", service, "--app", app, "--control", url, "--join-token", token, "--ca-file", "\(dataDir)/ca.pem",
                "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--report-interval", "200ms",
            ] + (advertise.map { ["--advertise", $0] } ?? []))
            processes.append(proxy)
            return (try proxy.readyValue("outbound", prefix: "eino proxy ready"), try proxy.readyValue("inbound", prefix: "eino proxy ready"),
                    try proxy.readyValue("admin", prefix: "eino proxy ready"))
        }

        /// Waits until the proxy at `admin` has a config naming every address in `addresses`.
        func waitForConfig(admin: String, containing addresses: [String]) throws {
            _ = try poll(timeout: 20, "config with \(addresses) at \(admin)") {
                let config = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-s", "http://\(admin)/config"]).stdout
                return addresses.allSatisfy { config.contains($0) } ? true : nil
            }
        }

        func stat(_ arguments: [String] = []) throws -> [StatRow] {
            let output = try eino(["stat", "-o", "json"] + arguments)
            try #require(output.status == 0, "eino stat failed: \(output.stderr)")
            return try JSONDecoder().decode([StatRow].self, from: Data(output.stdout.utf8))
        }

        deinit {
            for process in processes.reversed() { process.terminate() }
            Foundation.kill(control.process.processIdentifier, SIGCONT)
            control.terminate()
            try? FileManager.default.removeItem(atPath: dataDir)
        }
    }

    static let scripts = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts").path
    var scripts: String { Self.scripts }

    /// `count` keep-alive requests through `outbound` (Tests/Scripts/load.py): status → count.
    static func send(_ outbound: String, authority: String, count: Int, path: String = "/", connections: Int = 4) throws -> [String: Int] {
        let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/python3"),
                                         [scripts + "/load.py", outbound, authority, String(count), String(connections), path])
        struct Result: Decodable { var status: [String: Int] }
        return try JSONDecoder().decode(Result.self, from: Data(output.stdout.utf8)).status
    }

    @Test func scriptedMixIsCountedExactlyByTheProxyTheControlPlaneAndEinoStat() throws {
        let mesh = try Mesh()
        let web = try mesh.sidecar("web", app: try mesh.app("web"))
        let dead = try mesh.deadAddress()
        _ = try mesh.sidecar("web-dead", app: "127.0.0.1:9", advertise: dead)
        let client = try mesh.sidecar("client", app: "127.0.0.1:9")
        try mesh.waitForConfig(admin: client.admin, containing: [web.inbound, dead])

        #expect(try Self.send(client.outbound, authority: "web", count: 700) == ["200": 700])
        #expect(try Self.send(client.outbound, authority: "web", count: 200, path: "/status?code=503") == ["503": 200])
        #expect(try Self.send(client.outbound, authority: "web-dead", count: 100) == ["502": 100])

        // The client's proxy counted every exchange, over mTLS to web, plaintext to nothing.
        let proxy = try PrometheusSamples(url: "http://\(client.admin)/metrics")
        let toWeb = ["direction": "outbound", "service": "web", "backend": "web", "tls": "true"]
        let toDead = ["direction": "outbound", "service": "web-dead", "backend": "web-dead", "tls": "true"]
        #expect(proxy.value("eino_responses_total", toWeb.merging(["status_code": "200", "classification": "success"]) { $1 }) == 700)
        #expect(proxy.value("eino_responses_total", toWeb.merging(["status_code": "503", "classification": "failure"]) { $1 }) == 200)
        #expect(proxy.value("eino_responses_total", toDead.merging(["status_code": "502", "classification": "failure"]) { $1 }) == 100)

        // The reports reach the control plane: exact counts per (service, backend).
        let rows = try poll(timeout: 20, "eino stat to show 1000 requests") {
            let rows = try mesh.stat()
            return rows.reduce(0) { $0 + $1.requests } == 1000 ? rows : nil
        }
        #expect(rows.map { "\($0.service) \($0.backend) \($0.requests)" } == ["web web 900", "web-dead web-dead 100"])
        #expect(abs(rows[0].successRate - 700.0 / 900) < 1e-9)
        #expect(rows[1].successRate == 0)
        let successes = rows.reduce(0.0) { $0 + $1.successRate * Double($1.requests) }
        #expect(abs(successes / 1000 - 0.7) < 1e-9)
        #expect(rows.allSatisfy { $0.rps > 0 && $0.latencyMsP50 > 0 && $0.latencyMsP50 <= $0.latencyMsP95 && $0.latencyMsP95 <= $0.latencyMsP99 })
        #expect(try mesh.stat(["web-dead"]).map(\.backend) == ["web-dead"])

        // The table, and the usage error for an unknown window.
        let table = try mesh.eino(["stat", "--window", "10m"])
        #expect(table.status == 0)
        #expect(table.stdoutLines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["SERVICE", "BACKEND", "REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"])
        #expect(table.stdoutLines.dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true).prefix(4).joined(separator: " ") }
                == ["web web 900 77.78%", "web-dead web-dead 100 0.00%"])
        #expect(try mesh.eino(["stat", "--window", "5m"]).status == 2)

        // Its /metrics: the mesh totals (both sides of the web exchanges) and its own process.
        let controlMetrics = try PrometheusSamples(url: mesh.url + "/metrics", caFile: "\(mesh.dataDir)/ca.pem")
        #expect(controlMetrics.value("eino_responses_total", toWeb.merging(["status_code": "200", "classification": "success"]) { $1 }) == 700)
        #expect(controlMetrics.value("eino_responses_total", toDead.merging(["status_code": "502", "classification": "failure"]) { $1 }) == 100)
        let inboundWeb = ["direction": "inbound", "service": "web", "backend": "web", "tls": "true"]
        _ = try poll(timeout: 10, "the web sidecar's inbound counts at the control plane") {
            let samples = try PrometheusSamples(url: mesh.url + "/metrics", caFile: "\(mesh.dataDir)/ca.pem")
            return samples.value("eino_responses_total", inboundWeb.merging(["status_code": "503", "classification": "failure"]) { $1 }) == 200 ? true : nil
        }
        #expect(controlMetrics.value("eino_control_reporting_proxies") == 3)
        #expect(controlMetrics.value("process_resident_memory_bytes") > 1_000_000)
    }

    @Test func latencyPercentilesComeFromTheMergedHistogram() throws {
        let mesh = try Mesh()
        let web = try mesh.sidecar("web", app: try mesh.app("web"))
        let client = try mesh.sidecar("client", app: "127.0.0.1:9")
        try mesh.waitForConfig(admin: client.admin, containing: [web.inbound])
        // The app answers 9 of every 10 requests after 5 ms, the 10th after 50 ms.
        #expect(try Self.send(client.outbound, authority: "web", count: 200, path: "/mixed", connections: 1) == ["200": 200])
        let row = try poll(timeout: 20, "200 requests in eino stat") { try mesh.stat(["web"]).first { $0.requests == 200 } }
        // True p50 ≈ 5 ms + the hops: its bucket is (5, 10] ms; true p99 ≈ 50 ms + hops: (50, 100].
        #expect((5...10).contains(row.latencyMsP50), "p50 \(row.latencyMsP50)")
        #expect((50...100).contains(row.latencyMsP99), "p99 \(row.latencyMsP99)")
        #expect(row.successRate == 1)
    }

    @Test func reportsLostWhileTheControlPlaneIsAwayArriveOnceAfterItReturns() throws {
        let mesh = try Mesh()
        let web = try mesh.sidecar("web", app: try mesh.app("web"))
        let client = try mesh.sidecar("client", app: "127.0.0.1:9")
        try mesh.waitForConfig(admin: client.admin, containing: [web.inbound])
        #expect(try Self.send(client.outbound, authority: "web", count: 100) == ["200": 100])
        _ = try poll(timeout: 20, "the first 100 at the control plane") { try mesh.stat(["--window", "10m"]).first?.requests == 100 ? true : nil }

        // Frozen for 30 s: its socket accepts, nothing answers; the proxies keep serving.
        kill(mesh.control.process.processIdentifier, SIGSTOP)
        var sent = 100
        let away = Date()
        while Date().timeIntervalSince(away) < 30 {
            #expect(try Self.send(client.outbound, authority: "web", count: 50, connections: 2) == ["200": 50])
            sent += 50
        }
        kill(mesh.control.process.processIdentifier, SIGCONT)

        // Everything arrives, once — including reports the frozen control plane read late.
        _ = try poll(timeout: 60, "\(sent) requests at the control plane") {
            try mesh.stat(["--window", "10m"]).first?.requests == UInt64(sent) ? true : nil
        }
        let reports = { try PrometheusSamples(url: mesh.url + "/metrics", caFile: "\(mesh.dataDir)/ca.pem").value("eino_control_reports_total") }
        let before = try reports()
        _ = try poll(timeout: 20, "ten more reports") { try reports() >= before + 10 ? true : nil }
        #expect(try mesh.stat(["--window", "10m"]).map(\.requests) == [UInt64(sent)])
        let proxy = try PrometheusSamples(url: "http://\(client.admin)/metrics")
        #expect(proxy.value("eino_responses_total", ["direction": "outbound", "service": "web", "backend": "web", "tls": "true",
                                                     "status_code": "200", "classification": "success"]) == Double(sent))
    }
}
