import EinoTestSupport
import Foundation
import Testing

/// A control plane, two versions of an app behind sidecars and a client sidecar, all real
/// processes on loopback: the journeys "apply a TrafficSplit" and "run the demo".
@Suite(.serialized) struct MeshTests {
    let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("eino-mesh-\(UUID().uuidString)").path

    @Test func demoShowsTheSplit() throws {
        let demo = try EinoProcess.eino(["demo", "--duration", "4s", "--rate", "100"])
        #expect(demo.status == 0, "\(demo.stderr)")
        let last = try #require(demo.stdoutLines.last { $0.hasPrefix("t=") })
        #expect(last.hasSuffix("failed 0"), "\(last)")
        // 90/10 over ~400 requests: web-v1's share is 90 % ± 6 (over 4 standard deviations).
        let share = last.split(separator: " ").firstIndex(of: "web-v1").flatMap { Double(last.split(separator: " ")[$0 + 1].dropLast()) }
        #expect((84...96).contains(share ?? 0), "\(last)")
        // The control plane's stat table, last: both backends of web, nothing failed.
        let lines = demo.stdoutLines
        let header = try #require(lines.lastIndex { $0.hasPrefix("SERVICE ") }, "\(demo.stdout)")
        let rows = lines[(header + 1)...].prefix { $0.hasPrefix("web ") }.map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(rows.map { $0[1] } == ["web-v1", "web-v2"], "\(demo.stdout)")
        #expect(rows.allSatisfy { $0[3] == "100.00%" }, "\(demo.stdout)")
        // Every request sent (and the few that found the split ready) was reported.
        let sent = Int(last.split(separator: " ")[2]) ?? 0
        #expect((sent...(sent + 150)).contains(rows.reduce(0) { $0 + (Int($1[2]) ?? 0) }), "\(demo.stdout)")
        // The mirror report, last: requests copied to web-v3 and compared, none lost; the
        // items it prices wrong (every 20th) show as body mismatches with their JSON path.
        // (How many were reported by the end depends on the reports' timing, not asserted.)
        let mirror = try #require(lines.last { $0.hasPrefix("web-v3 ") }, "\(demo.stdout)").split(separator: " ", omittingEmptySubsequences: true)
        let (dropped, failed, compared, body) = (mirror[3], mirror[4], Int(mirror[5]) ?? 0, Int(mirror[9]) ?? 0)
        #expect(dropped == "0" && failed == "0" && compared > 0, "\(mirror)")
        #expect(body > 0 && body <= compared / 10, "\(mirror)")
        #expect(lines.contains { $0.contains("200/200  $.price: ") }, "\(demo.stdout)")
    }

    @Test func appliedSplitsMoveTrafficWithoutFailures() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:0"])
        defer { control.terminate() }
        let url = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
        func eino(_ arguments: [String], stdin: String? = nil) throws -> EinoProcess.Output {
            try EinoProcess.eino(arguments + ["--control", url, "--data-dir", dataDir], stdin: stdin)
        }
        var processes: [ServerProcess] = [control]
        defer { for process in processes.reversed() { process.terminate() } }
        func sidecar(_ service: String, app: String) throws -> ServerProcess {
            let token = try eino(["token", "create", "--service", service]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let proxy = try ServerProcess.eino([
                "proxy", "--service", service, "--app", app, "--control", url, "--join-token", token, "--ca-file", "\(dataDir)/ca.pem",
                "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            ])
            processes.append(proxy)
            return proxy
        }
        for version in ["v1", "v2"] {
            let app = try ServerProcess.eino(["demo-app", "--name", version, "--listen", "127.0.0.1:0"])
            processes.append(app)
            _ = try sidecar("web-\(version)", app: try app.readyValue("listen", prefix: "eino demo-app ready"))
        }
        let client = try sidecar("client", app: "127.0.0.1:9")
        let outbound = try client.readyValue("outbound", prefix: "eino proxy ready")

        /// `count` URLs of the client sidecar, each with its own `-o /dev/null` (curl pairs them).
        func discarding(_ count: Int) -> [String] {
            Array(repeating: ["-o", "/dev/null", "http://\(outbound)/"], count: count).flatMap { $0 }
        }
        /// `count` requests to web through the client sidecar: who served each, or the failure.
        func send(_ count: Int) throws -> [String] {
            let result = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"),
                ["-s", "-H", "Host: web", "-w", "%{http_code} %header{x-served-by}%header{eino-error}\\n"] + discarding(count))
            return result.stdoutLines
        }
        func split(_ v1: Int, _ v2: Int) -> String {
            """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: web-canary}
            spec: {service: web, backends: [{service: web-v1, weight: \(v1)}, {service: web-v2, weight: \(v2)}]}
            """
        }

        #expect(try eino(["apply", "-f", "-"], stdin: split(50, 50)).status == 0)
        _ = try poll(timeout: 20, "both versions behind web") { Set(try send(20)) == ["200 v1", "200 v2"] ? true : nil }
        let even = try send(400)
        #expect(even.allSatisfy { $0 == "200 v1" || $0 == "200 v2" }, "\(Set(even))")
        let v1 = even.filter { $0 == "200 v1" }.count
        #expect((160...240).contains(v1), "web-v1 served \(v1) of 400")

        // 0/100: every proxy has it within a second, and nothing fails meanwhile.
        let load = try ServerProcess(URL(fileURLWithPath: "/usr/bin/curl"),
            ["-s", "-H", "Host: web", "-w", "%{http_code}\\n"] + discarding(600))
        #expect(try eino(["apply", "-f", "-"], stdin: split(0, 100)).status == 0)
        let applied = Date()
        _ = try poll(timeout: 1, "web-v2 alone") { Set(try send(10)) == ["200 v2"] ? true : nil }
        let took = Date().timeIntervalSince(applied)
        #expect(took < 1, "the split took \(took) s to arrive")
        try load.waitForExit(timeout: 60)
        #expect(load.lines.count == 600)
        #expect(load.lines.allSatisfy { $0 == "200" }, "\(Set(load.lines))")

        // The control plane dies (kill -9): proxies keep serving the last config.
        let port = url.split(separator: ":").last.map(String.init)!
        control.kill()
        try control.waitForExit()
        #expect(Set(try send(200)) == ["200 v2"])

        // Back on the same port with the same data: resources are there, proxies reconnect
        // and register again, and a new apply takes effect.
        let restarted = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:\(port)"])
        processes.append(restarted)
        _ = try restarted.readyValue("listen", prefix: "eino control ready")
        #expect(try eino(["get", "trafficsplits"]).stdoutLines == ["TrafficSplit default/web-canary: web → web-v1 0%, web-v2 100%"])
        _ = try poll(timeout: 45, "three proxies registered again") { try eino(["get", "endpoints"]).stdoutLines.count == 3 ? true : nil }
        #expect(try eino(["apply", "-f", "-"], stdin: split(100, 0)).status == 0)
        _ = try poll(timeout: 45, "web-v1 alone after the restart") { Set(try send(10)) == ["200 v1"] ? true : nil }
    }

    /// The mirroring journey through the control plane: proxies with mTLS between them, a
    /// TrafficMirror applied with `eino apply`, reports summed by the control plane, and
    /// `eino mirror report --fail-above` as a release gate.
    @Test func mirrorReportGatesOnTheMismatchRate() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:0"])
        var processes: [ServerProcess] = [control]
        defer { for process in processes.reversed() { process.terminate() } }
        let url = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
        func eino(_ arguments: [String], stdin: String? = nil) throws -> EinoProcess.Output {
            try EinoProcess.eino(arguments + ["--control", url, "--data-dir", dataDir], stdin: stdin)
        }
        func sidecar(_ service: String, app: String) throws -> ServerProcess {
            let token = try eino(["token", "create", "--service", service]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let proxy = try ServerProcess.eino([
                "proxy", "--service", service, "--app", app, "--control", url, "--join-token", token, "--ca-file", "\(dataDir)/ca.pem",
                "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--report-interval", "200ms",
            ])
            processes.append(proxy)
            return proxy
        }
        // web-v2 is the rewrite under test: every 10th item's price is wrong.
        for (service, extra) in [("web", [String]()), ("web-v2", ["--diverge-every", "10"])] {
            let app = try ServerProcess.eino(["demo-app", "--name", service, "--listen", "127.0.0.1:0"] + extra)
            processes.append(app)
            _ = try sidecar(service, app: try app.readyValue("listen", prefix: "eino demo-app ready"))
        }
        let client = try sidecar("client", app: "127.0.0.1:9")
        let outbound = try client.readyValue("outbound", prefix: "eino proxy ready")
        let mirror = """
            apiVersion: mirror.eino.dev/v1alpha1
            kind: TrafficMirror
            metadata: {name: web-shadow}
            spec:
              service: web
              mirrors: [{service: web-v2, percent: 100}]
              compare: {ignoreHeaders: [x-served-by], ignoreJSONPaths: [$.app]}
            """
        #expect(try eino(["apply", "-f", "-"], stdin: mirror).status == 0)
        struct Report: Decodable {
            struct Mirror: Decodable {
                struct Sample: Decodable {
                    var path: String
                    var difference: String
                }

                var service: String
                var sampled: Int
                var sent: Int
                var compared: Int
                var body_mismatches: Int
                var mismatch_rate: Double
                var samples: [Sample]
            }

            var service: String
            var mirrors: [Mirror]
        }
        func report() throws -> Report {
            try JSONDecoder().decode(Report.self, from: Data(try eino(["mirror", "report", "web", "-o", "json"]).stdout.utf8))
        }
        func get(_ path: String) throws {
            _ = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-s", "-H", "Host: web", "http://\(outbound)\(path)"])
        }
        // Warm-up on `/` (answers that match) until the client's proxy has the mirror, then
        // until every copy made so far is compared and reported.
        _ = try poll(timeout: 20, "the mirror at the client's proxy") { () -> Bool? in
            try get("/")
            return try report().mirrors.first.map { $0.sent > 0 } == true ? true : nil
        }
        let base = try poll(timeout: 20, "the warm-up copies compared") { () -> Int? in
            guard let mirror = try report().mirrors.first, mirror.compared == mirror.sampled else { return nil }
            return mirror.compared
        }
        let urls = (0..<200).flatMap { ["-o", "/dev/null", "-w", "%{http_code}\\n", "http://\(outbound)/items/\($0)"] }
        let load = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-s", "-H", "Host: web"] + urls)
        #expect(load.stdoutLines == Array(repeating: "200", count: 200))

        // Of the 200 items, the 20 multiples of 10 differ.
        let report = try poll(timeout: 20, "every copy compared and reported") { () -> Report? in
            let report = try report()
            return report.mirrors.first?.compared == base + 200 ? report : nil
        }
        let shadow = try #require(report.mirrors.first)
        #expect(report.service == "web" && shadow.service == "web-v2")
        #expect(shadow.sent == base + 200 && shadow.body_mismatches == 20)
        #expect(abs(shadow.mismatch_rate - 20.0 / Double(base + 200)) < 1e-9)
        let sample = try #require(shadow.samples.first)
        let item = Int(sample.path.dropFirst("/items/".count)) ?? -1
        #expect(item % 10 == 0 && sample.difference == "$.price: \(item * 100) != \(item * 100 + 1)")

        let table = try eino(["mirror", "report", "web"])
        #expect(table.stdoutLines.first?.hasPrefix("MIRROR") == true)
        let rate = String(format: "%.1f%%", 2000.0 / Double(base + 200))
        #expect(table.stdoutLines.contains { $0.hasPrefix("web-v2") && $0.contains(" \(base + 200) ") && $0.contains(rate) })
        let failing = try eino(["mirror", "report", "web", "--fail-above", "0.05"])
        #expect(failing.status == 1)
        #expect(failing.stderr.contains("mirror web-v2: mismatch rate \(rate) is above 5.0%"))
        #expect(try eino(["mirror", "report", "web", "--fail-above", "0.2"]).status == 0)
    }
}
