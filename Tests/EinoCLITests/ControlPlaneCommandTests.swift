import EinoTestSupport
import Foundation
import Testing

/// `eino control` with `eino apply/get/delete` and curl against it: real processes, TLS, files.
@Suite(.serialized) struct ControlPlaneCommandTests {
    let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("eino-control-\(UUID().uuidString)").path

    func startControl() throws -> (ServerProcess, String) {
        let control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:0"])
        let address = try control.readyValue("listen", prefix: "eino control ready")
        return (control, "https://\(address)")
    }

    func eino(_ arguments: [String], _ url: String, stdin: String? = nil) throws -> EinoProcess.Output {
        try EinoProcess.eino(arguments + ["--control", url, "--data-dir", dataDir], stdin: stdin)
    }

    func curl(_ arguments: [String]) throws -> EinoProcess.Output {
        try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-sS", "--cacert", "\(dataDir)/ca.pem"] + arguments)
    }

    let split = { (v1: Int, v2: Int) in
        """
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: web-canary}
        spec: {service: web, backends: [{service: web-v1, weight: \(v1)}, {service: web-v2, weight: \(v2)}]}
        """
    }

    @Test func applyGetDeleteRoundTrip() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let (control, url) = try startControl()
        defer { control.terminate() }

        let applied = try eino(["apply", "-f", "manifests/examples"], url)
        #expect(applied.stderr == "")
        #expect(applied.status == 0)
        #expect(applied.stdoutLines == [
            "TrafficSplit default/web-canary created",
            "HTTPRouteGroup default/beta-users created",
            "TrafficSplit default/api-beta created",
            "TrafficMirror default/web-shadow created",
            "HTTPRouteGroup default/web-reads created",
            "TrafficTarget default/web-from-client created",
        ])
        #expect(try eino(["apply", "-f", "manifests/examples/canary-split.yaml"], url).stdoutLines
            == ["TrafficSplit default/web-canary unchanged"])

        let table = try eino(["get", "trafficsplits"], url)
        #expect(table.stdoutLines == [
            "TrafficSplit default/api-beta: api [HTTPRouteGroup beta-users] → api-v1 0%, api-v2 100%",
            "TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%",
        ])
        let yaml = try eino(["get", "trafficsplits", "web-canary", "-o", "yaml"], url)
        #expect(yaml.stdout == """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata:
              name: web-canary
              namespace: default
              resourceVersion: "1"
            spec:
              service: web
              backends:
              - service: web-v1
                weight: 90
              - service: web-v2
                weight: 10

            """)
        // What `get -o yaml` prints can be applied again; its resourceVersion guards the edit.
        let edited = yaml.stdout.replacingOccurrences(of: "weight: 10", with: "weight: 30")
        #expect(try eino(["apply", "-f", "-"], url, stdin: edited).stdoutLines == ["TrafficSplit default/web-canary configured"])
        let stale = try eino(["apply", "-f", "-"], url, stdin: edited.replacingOccurrences(of: "weight: 30", with: "weight: 40"))
        #expect(stale.status == 1)
        #expect(stale.stderrLines == [
            "error: TrafficSplit/default/web-canary has resourceVersion 2 in the store, not 1; get it again and re-apply",
        ])

        let json = try eino(["get", "trafficsplits", "web-canary", "-o", "json"], url)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let backends = (object?["spec"] as? [String: Any])?["backends"] as? [[String: Any]]
        #expect(backends?.compactMap { $0["weight"] as? Int } == [90, 30])

        let refused = try eino(["delete", "httproutegroups", "beta-users"], url)
        #expect(refused.status == 1)
        #expect(refused.stderrLines == [
            "<stored>:0: TrafficSplit/default/api-beta: spec.matches[0].name: unresolved reference: HTTPRouteGroup default/beta-users is neither in this apply set nor stored",
        ])
        #expect(try eino(["delete", "-f", "manifests/examples/header-split.yaml"], url).stdoutLines == [
            "HTTPRouteGroup default/beta-users deleted", "TrafficSplit default/api-beta deleted",
        ])
        #expect(try eino(["get", "trafficsplits", "api-beta"], url).status == 1)
    }

    /// A service written as its FQDN is stored, shown and compared as its short name; the
    /// cluster domain is the control plane's (`--cluster-domain`).
    @Test func fqdnServiceReferencesAreStoredByTheirShortName() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--cluster-domain", "corp.example"])
        defer { control.terminate() }
        let url = "https://\(try control.readyValue("listen", prefix: "eino control ready"))"
        let fqdn = split(90, 10)
            .replacingOccurrences(of: "service: web,", with: "service: web.default.svc.corp.example,")
            .replacingOccurrences(of: "service: web-v1,", with: "service: web-v1.default,")
        let applied = try eino(["apply", "-f", "-"], url, stdin: fqdn)
        #expect(applied.stderr == "")
        #expect(applied.stdoutLines == ["TrafficSplit default/web-canary created"])
        #expect(try eino(["get", "trafficsplits"], url).stdoutLines == ["TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%"])
        // The short spelling is the same split.
        #expect(try eino(["apply", "-f", "-"], url, stdin: split(90, 10)).stdoutLines == ["TrafficSplit default/web-canary unchanged"])
        // Another cluster domain, or another namespace, is refused with its line.
        let other = try eino(["apply", "-f", "-"], url, stdin: split(1, 1).replacingOccurrences(of: "service: web,", with: "service: web.default.svc.cluster.local,"))
        #expect(other.status == 1)
        #expect(other.stderrLines == [
            #"<stdin>:4: TrafficSplit/default/web-canary: spec.service: "web.default.svc.cluster.local" ends in cluster domain "cluster.local", but this mesh's is "corp.example""#,
        ])
        let elsewhere = try eino(["apply", "-f", "-"], url, stdin: split(1, 1).replacingOccurrences(of: "service: web-v2,", with: "service: web-v2.prod,"))
        #expect(elsewhere.stderrLines == [
            #"<stdin>:4: TrafficSplit/default/web-canary: spec.backends[1].service: "web-v2.prod" names namespace "prod", but this resource is in namespace "default"; it may only name services in its own namespace"#,
        ])
        #expect(try eino(["get", "trafficsplits", "web-canary", "-o", "yaml"], url).stdout.contains("weight: 90"))
    }

    @Test func invalidApplyChangesNothing() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let (control, url) = try startControl()
        defer { control.terminate() }
        #expect(try eino(["apply", "-f", "-"], url, stdin: split(50, 50)).status == 0)
        // Two documents, the second invalid: neither is stored.
        let result = try eino(["apply", "-f", "-"], url, stdin: split(0, 100) + "\n---\n" + split(1, 2).replacingOccurrences(of: "weight: 2}", with: "weight: -1}"))
        #expect(result.status == 1)
        #expect(result.stderrLines == ["<stdin>:9: TrafficSplit/default/web-canary: spec.backends[1].weight: must not be negative, got -1"])
        let yaml = try eino(["get", "trafficsplits", "web-canary", "-o", "yaml"], url).stdout
        #expect(yaml.contains("weight: 50"))
        #expect(!yaml.contains("weight: 100"))
    }

    @Test func credentialsAreCheckedAndPrivate() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let (control, url) = try startControl()
        defer { control.terminate() }
        for file in ["admin.token", "ca.key", "resources.json"] where file != "resources.json" {
            let mode = try FileManager.default.attributesOfItem(atPath: "\(dataDir)/\(file)")[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file)")
        }
        let anonymous = try curl(["-w", "\n%{http_code}", "\(url)/v1/resources/trafficsplits"])
        #expect(anonymous.stdoutLines.last == "401")
        #expect(anonymous.stdoutLines.first == #"{"error":"unauthorized","message":"admin token required (Authorization: Bearer …)"}"#)
        let wrong = try curl(["-w", "\n%{http_code}", "-H", "Authorization: Bearer nope", "\(url)/v1/resources/trafficsplits"])
        #expect(wrong.stdoutLines.last == "401")

        // A workload certificate from the same CA is a proxy credential: 403, not admin.
        let certs = dataDir + "/certs"
        #expect(try EinoProcess.eino(["identity", "issue", "--dir", dataDir, "--service", "web", "--out", certs]).status == 0)
        let proxy = try curl(["-w", "\n%{http_code}", "--cert", "\(certs)/web.pem", "--key", "\(certs)/web.key", "\(url)/v1/resources/trafficsplits"])
        #expect(proxy.stdoutLines.last == "403")
        let token = try String(contentsOfFile: "\(dataDir)/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let admin = try curl(["-w", "\n%{http_code}", "-H", "Authorization: Bearer \(token)", "\(url)/v1/resources/trafficsplits"])
        #expect(admin.stdoutLines.last == "200")
        #expect(admin.stdoutLines.first == #"{"items":[],"revision":0}"#)
    }

    @Test func resourcesSurviveRestarts() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var (control, url) = try startControl()
        #expect(try eino(["apply", "-f", "manifests/examples"], url).status == 0)
        control.kill()
        try control.waitForExit()
        (control, url) = try startControl()
        defer { control.terminate() }
        #expect(try eino(["get", "trafficsplits"], url).stdoutLines.count == 2)
        #expect(try eino(["apply", "-f", "manifests/examples"], url).stdoutLines.allSatisfy { $0.hasSuffix(" unchanged") })
    }

    /// A proxy's way in, with openssl and curl as the proxy: a join token buys exactly one
    /// certificate for its own service; that certificate then registers and watches.
    @Test func joinRegisterAndWatch() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let (control, url) = try startControl()
        defer { control.terminate() }
        let openssl = URL(fileURLWithPath: "/usr/bin/openssl")
        func csr(for service: String) throws {
            #expect(try EinoProcess.run(openssl, ["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "\(dataDir)/\(service).key"]).status == 0)
            #expect(try EinoProcess.run(openssl, [
                "req", "-new", "-key", "\(dataDir)/\(service).key", "-subj", "/", "-out", "\(dataDir)/\(service).csr",
                "-addext", "subjectAltName=URI:spiffe://cluster.local/ns/default/sa/\(service)",
            ]).status == 0)
        }
        func join(_ token: String, _ service: String) throws -> (status: String, body: [String: Any]) {
            let request = try JSONSerialization.data(withJSONObject: [
                "token": token, "csr": try String(contentsOfFile: "\(dataDir)/\(service).csr", encoding: .utf8),
            ])
            try request.write(to: URL(fileURLWithPath: "\(dataDir)/join.json"))
            let result = try curl(["-w", "\n%{http_code}", "-X", "POST", "-H", "content-type: application/json",
                                   "--data", "@\(dataDir)/join.json", "\(url)/v1/join"])
            let body = try JSONSerialization.jsonObject(with: Data((result.stdoutLines.first ?? "").utf8)) as? [String: Any]
            return (result.stdoutLines.last ?? "", body ?? [:])
        }
        func token(_ service: String, ttl: String = "1h") throws -> String {
            let result = try eino(["token", "create", "--service", service, "--ttl", ttl], url)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try csr(for: "web")
        try csr(for: "db")

        // A token for web cannot obtain db, and is used up by trying.
        let webToken = try token("web")
        let stolen = try join(webToken, "db")
        #expect(stolen.status == "403")
        #expect((stolen.body["message"] as? String)?.contains("asks for URI:spiffe://cluster.local/ns/default/sa/db but the identity is spiffe://cluster.local/ns/default/sa/web") == true)
        #expect(try join(webToken, "web").body["message"] as? String == "join token already used")

        let fresh = try token("web")
        let joined = try join(fresh, "web")
        #expect(joined.status == "200")
        #expect(joined.body["identity"] as? String == "spiffe://cluster.local/ns/default/sa/web")
        try (joined.body["certificateChain"] as? String ?? "").write(toFile: "\(dataDir)/web.pem", atomically: true, encoding: .utf8)
        #expect(try EinoProcess.run(openssl, ["verify", "-CAfile", "\(dataDir)/ca.pem", "\(dataDir)/web.pem"]).stdout == "\(dataDir)/web.pem: OK\n")
        let again = try join(fresh, "web")
        #expect(again.status == "401")
        #expect(again.body["message"] as? String == "join token already used")

        // --uses: replicas of one Deployment share a token; 0 means any number until expiry.
        let twice = try eino(["token", "create", "--service", "web", "--uses", "2"], url).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try [join(twice, "web"), join(twice, "web"), join(twice, "web")].map(\.status) == ["200", "200", "401"])
        let unlimited = try eino(["token", "create", "--service", "web", "--uses", "0"], url).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try (0..<5).map { _ in try join(unlimited, "web").status } == Array(repeating: "200", count: 5))
        #expect(try eino(["token", "create", "--service", "web", "--uses", "-1"], url).status == 2)

        let shortLived = try token("web", ttl: "1s")
        let expiry = Date().addingTimeInterval(1.05)
        _ = try poll(timeout: 5, "the token's expiry") { Date() > expiry ? true : nil }
        #expect(try join(shortLived, "web").body["message"] as? String == "join token expired")

        // Registration and watch need the mesh certificate.
        let mtls = ["--cert", "\(dataDir)/web.pem", "--key", "\(dataDir)/web.key"]
        let anonymous = try curl(["-w", "\n%{http_code}", "-X", "POST", "--data", #"{"address":"127.0.0.1:7143"}"#, "\(url)/v1/endpoints"])
        #expect(anonymous.stdoutLines.last == "401")
        let watch = try ServerProcess(URL(fileURLWithPath: "/usr/bin/curl"), ["-sS", "-N", "--cacert", "\(dataDir)/ca.pem"] + mtls + ["\(url)/v1/watch"])
        defer { watch.terminate() }
        _ = try watch.waitForLine(startingWith: #"{"resources":[],"services":[]"#)

        let registered = try curl(mtls + ["-X", "POST", "-H", "content-type: application/json",
                                          "--data", #"{"address":"127.0.0.1:7143","labels":{"version":"v1"}}"#, "\(url)/v1/endpoints"])
        #expect(registered.stdout == #"{"heartbeatSeconds":5}"#)
        #expect(try eino(["get", "endpoints"], url).stdoutLines == ["default/web 127.0.0.1:7143 spiffe://cluster.local/ns/default/sa/web"])
        _ = try watch.waitForLine(startingWith: #"{"resources":[],"services":[{"endpoints":[{"host":"127.0.0.1","identity":"spiffe://cluster.local/ns/default/sa/web","labels":{"version":"v1"},"port":7143}]"#)

        #expect(try eino(["apply", "-f", "manifests/examples/canary-split.yaml"], url).status == 0)
        let update = try poll(timeout: 10, "the split on the watch") { watch.lines.last { $0.contains("web-canary") } }
        #expect(update.contains(#""backends":[{"service":"web-v1","weight":90},{"service":"web-v2","weight":10}]"#))

        let deleted = try curl(mtls + ["-X", "DELETE", "\(url)/v1/endpoints?address=127.0.0.1:7143"])
        #expect(deleted.stdout == #"{"deregistered":"127.0.0.1:7143"}"#)
        #expect(try eino(["get", "endpoints"], url).stdoutLines == [])
    }

    /// `kill -9` while an apply is in flight, 50 times: after each restart the store holds
    /// the state before that apply or after it, whole, and an acknowledged apply is never lost.
    @Test func killDuringAppliesNeverTearsTheStore() throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var stored = 0
        var acknowledgedRounds = 0
        for round in 1...50 {
            let (control, url) = try startControl()
            let yaml = try eino(["get", "trafficsplits", "web-canary", "-o", "yaml"], url).stdout
            let weights = yaml.split(separator: "\n").filter { $0.contains("weight:") }.compactMap { Int($0.split(separator: " ").last!) }
            #expect(weights == (stored == 0 ? [] : [100, stored]), "round \(round): \(yaml)")

            let next = stored + 1
            let file = "\(dataDir)/split-\(next).yaml"
            try split(100, next).write(toFile: file, atomically: true, encoding: .utf8)
            let applier = try ServerProcess(EinoProcess.binary, ["apply", "-f", file, "--control", url, "--data-dir", dataDir])
            // The fault lands at a different point each round: before the request arrives,
            // while it is stored, or after the answer.
            Thread.sleep(forTimeInterval: Double(round % 10) * 0.04)
            control.kill()
            try control.waitForExit()
            let acknowledged = try applier.waitForExit() == 0

            let (check, checkURL) = try startControl()
            let after = try eino(["get", "trafficsplits", "web-canary", "-o", "yaml"], checkURL).stdout
            let weight = after.split(separator: "\n").last { $0.contains("weight:") }.flatMap { Int($0.split(separator: " ").last!) }
            if acknowledged {
                acknowledgedRounds += 1
                #expect(weight == next, "round \(round): acknowledged apply lost")
            }
            #expect(weight == nil ? stored == 0 : [stored, next].contains(weight!), "round \(round): \(after)")
            stored = weight ?? 0
            check.kill()
            try check.waitForExit()
        }
        // Both kinds of round happened: kills before an answer and after one.
        #expect((1...49).contains(acknowledgedRounds), "\(acknowledgedRounds) of 50 applies acknowledged")
    }
}
