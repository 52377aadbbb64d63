import EinoTestSupport
import Foundation
import Testing

/// `eino init`: the pinned dry-run script, usage errors, and the real rules in a network
/// namespace made for the test (never the host's).
@Suite(.serialized) struct InitCommandTests {
    @Test func dryRunPrintsExactlyTheCommands() throws {
        let result = try EinoProcess.eino(["init", "--dry-run", "--ipv6", "off", "--skip-outbound-ports", "22",
                                           "--skip-inbound-ports", "9090", "--skip-cidrs", "10.0.0.0/8,fd00::/8"])
        #expect(result.status == 0)
        #expect(result.stdoutLines == [
            "iptables-nft -t nat -N EINO_OUTPUT || iptables-nft -t nat -F EINO_OUTPUT",
            "iptables-nft -t nat -N EINO_REDIRECT || iptables-nft -t nat -F EINO_REDIRECT",
            "iptables-nft -t nat -N EINO_INBOUND || iptables-nft -t nat -F EINO_INBOUND",
            "iptables-nft -t nat -N EINO_IN_REDIRECT || iptables-nft -t nat -F EINO_IN_REDIRECT",
            "iptables-nft -t nat -A EINO_OUTPUT -m owner --uid-owner 7102 -j RETURN",
            "iptables-nft -t nat -A EINO_OUTPUT -d 127.0.0.0/8 -j RETURN",
            "iptables-nft -t nat -A EINO_OUTPUT -d 10.0.0.0/8 -j RETURN",
            "iptables-nft -t nat -A EINO_OUTPUT -p tcp --dport 22 -j RETURN",
            "iptables-nft -t nat -A EINO_OUTPUT -j EINO_REDIRECT",
            "iptables-nft -t nat -A EINO_REDIRECT -p tcp -j REDIRECT --to-ports 7140",
            "iptables-nft -t nat -A EINO_INBOUND -p tcp --dport 7191 -j RETURN",
            "iptables-nft -t nat -A EINO_INBOUND -p tcp --dport 9090 -j RETURN",
            "iptables-nft -t nat -A EINO_INBOUND -j EINO_IN_REDIRECT",
            "iptables-nft -t nat -A EINO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 7143",
            "iptables-nft -t nat -C PREROUTING -p tcp -j EINO_INBOUND || iptables-nft -t nat -A PREROUTING -p tcp -j EINO_INBOUND",
            "iptables-nft -t nat -C OUTPUT -p tcp -j EINO_OUTPUT || iptables-nft -t nat -A OUTPUT -p tcp -j EINO_OUTPUT",
        ])
    }

    @Test func dryRunWithIPv6AndLegacyAndRemove() throws {
        let both = try EinoProcess.eino(["init", "--dry-run", "--ipv6", "on", "--backend", "legacy", "--proxy-uid", "1337"])
        #expect(both.status == 0)
        #expect(both.stdoutLines.count == 26)
        #expect(both.stdoutLines.contains("ip6tables-legacy -t nat -A EINO_OUTPUT -d ::1/128 -j RETURN"))
        #expect(both.stdoutLines.contains("iptables-legacy -t nat -A EINO_OUTPUT -m owner --uid-owner 1337 -j RETURN"))
        let remove = try EinoProcess.eino(["init", "--dry-run", "--remove", "--ipv6", "off"])
        #expect(remove.status == 0)
        #expect(remove.stdoutLines.first == "iptables-nft -t nat -C PREROUTING -p tcp -j EINO_INBOUND && iptables-nft -t nat -D PREROUTING -p tcp -j EINO_INBOUND")
        #expect(remove.stdoutLines.count == 10)
    }

    @Test(arguments: [
        ["--skip-outbound-ports", "ssh"], ["--skip-cidrs", "10.0.0.0/40"], ["--inbound-port", "0"],
        ["--ipv6", "maybe"], ["--backend", "nftables"],
    ])
    func badFlagsAreUsageErrors(_ flags: [String]) throws {
        let result = try EinoProcess.eino(["init", "--dry-run"] + flags)
        #expect(result.status == 2)
        #expect(result.stderr.contains(flags[0]))
    }

    /// The expected Eino lines of `iptables-save -t nat` for the defaults.
    static let savedRules = [
        ":EINO_INBOUND - [0:0]",
        ":EINO_IN_REDIRECT - [0:0]",
        ":EINO_OUTPUT - [0:0]",
        ":EINO_REDIRECT - [0:0]",
        "-A PREROUTING -p tcp -j EINO_INBOUND",
        "-A OUTPUT -p tcp -j EINO_OUTPUT",
        "-A EINO_INBOUND -p tcp -m tcp --dport 7191 -j RETURN",
        "-A EINO_INBOUND -j EINO_IN_REDIRECT",
        "-A EINO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 7143",
        "-A EINO_OUTPUT -m owner --uid-owner 7102 -j RETURN",
        "-A EINO_OUTPUT -d 127.0.0.0/8 -j RETURN",
        "-A EINO_OUTPUT -j EINO_REDIRECT",
        "-A EINO_REDIRECT -p tcp -j REDIRECT --to-ports 7140",
    ]

    @Test func realRulesInAFreshNetworkNamespace() throws {
        guard let namespace = try TestNamespace.make() else { return }
        defer { namespace.delete() }
        func einoLines(_ save: String) throws -> [String] {
            let result = try namespace.exec(["/usr/sbin/\(save)", "-t", "nat"])
            #expect(result.status == 0, "\(save): \(result.stderr)")
            return result.stdoutLines.filter { $0.contains("EINO") }
        }
        // Twice: still one set of rules, in both families.
        for _ in 0..<2 {
            let run = try namespace.exec([EinoProcess.binary.path, "init", "--ipv6", "on"])
            #expect(run.status == 0, "eino init: \(run.stderr)")
        }
        #expect(try einoLines("iptables-save") == Self.savedRules)
        #expect(try einoLines("ip6tables-save") == Self.savedRules.map { $0.replacingOccurrences(of: "127.0.0.0/8", with: "::1/128") })
        // Changed options replace the rules rather than adding to them.
        let changed = try namespace.exec([EinoProcess.binary.path, "init", "--ipv6", "off", "--skip-inbound-ports", "9090"])
        #expect(changed.status == 0, "eino init: \(changed.stderr)")
        let lines = try einoLines("iptables-save")
        #expect(lines.filter { $0.hasPrefix("-A OUTPUT") || $0.hasPrefix("-A PREROUTING") }.count == 2)
        #expect(lines.contains("-A EINO_INBOUND -p tcp -m tcp --dport 9090 -j RETURN"))
        // --remove leaves nothing of Eino's; a second --remove is fine too.
        for _ in 0..<2 {
            let removed = try namespace.exec([EinoProcess.binary.path, "init", "--remove", "--ipv6", "on"])
            #expect(removed.status == 0, "eino init --remove: \(removed.stderr)")
        }
        #expect(try einoLines("iptables-save") == [])
        #expect(try einoLines("ip6tables-save") == [])
    }

    /// `eino init` and `eino proxy` together: the app's call to a service's virtual IP, where
    /// nothing listens, reaches the service through the proxy; the proxy's own connection to
    /// the endpoint is not redirected back to itself (the uid exemption), and without the rules
    /// the call fails. The proxy runs as root (`--proxy-uid 0`) and the app as uid 7200; the
    /// pods test (PodsTests) runs proxies as uid 7102.
    @Test func initAndProxyInterceptTheAppsCalls() throws {
        guard let namespace = try TestNamespace.make() else { return }
        defer { namespace.delete() }
        for command in [["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.250.0.1/32", "dev", "lo"],
                        ["ip", "route", "add", "local", "10.96.0.0/16", "dev", "lo"]] {
            let done = try namespace.exec(["/usr/sbin/" + command[0]] + command.dropFirst())
            #expect(done.status == 0, "\(command): \(done.stderr)")
        }
        let server = """
        import http.server
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"web\\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        httpd = http.server.HTTPServer(("10.250.0.1", 0), Handler)
        print("listening", httpd.server_address[1], flush=True)
        httpd.serve_forever()
        """
        let web = try namespace.start(["/usr/bin/python3", "-c", server])
        defer { web.kill() }
        let port = try web.waitForLine(startingWith: "listening ").dropFirst("listening ".count)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-init-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("proxy.yaml")
        try """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client}
        services:
        - name: web
          clusterIP: 10.96.0.20
          endpoints:
          - address: "10.250.0.1:\(port)"

        """.write(to: config, atomically: true, encoding: .utf8)
        let proxy = try namespace.start([EinoProcess.binary.path, "proxy", "--config", config.path, "--app", "127.0.0.1:9"])
        defer { proxy.kill() }
        _ = try proxy.waitForLine(startingWith: "eino proxy ready ")
        let initialised = try namespace.exec([EinoProcess.binary.path, "init", "--ipv6", "off", "--proxy-uid", "0"])
        #expect(initialised.status == 0, "\(initialised.stderr)")

        let app = ["/usr/bin/setpriv", "--reuid", "7200", "--regid", "7200", "--clear-groups", "/usr/bin/curl"]
        let call = try namespace.exec(app + ["-s", "-m", "10", "http://10.96.0.20/"])
        #expect(call.stdout == "web\n", "curl: \(call.status) \(call.stderr); proxy: \(proxy.stderr)")
        let metrics = try namespace.exec(["/usr/bin/curl", "-s", "http://127.0.0.1:7191/metrics"])
        // The proxy served it: a request to service web is counted.
        #expect(metrics.stdoutLines.contains { $0.hasPrefix("eino_requests_total{") && $0.contains("\"web\"") && !$0.hasSuffix(" 0") },
                "\(metrics.stdout)")

        let removed = try namespace.exec([EinoProcess.binary.path, "init", "--remove", "--ipv6", "off"])
        #expect(removed.status == 0)
        let direct = try namespace.exec(app + ["-s", "-m", "5", "http://10.96.0.20/"])
        #expect(direct.status != 0, "without the rules nothing listens at 10.96.0.20")
    }

    @Test func legacyBackendInAFreshNetworkNamespace() throws {
        guard let namespace = try TestNamespace.make() else { return }
        defer { namespace.delete() }
        for _ in 0..<2 {
            let run = try namespace.exec([EinoProcess.binary.path, "init", "--ipv6", "off", "--backend", "legacy"])
            #expect(run.status == 0, "eino init: \(run.stderr)")
        }
        let saved = try namespace.exec(["/usr/sbin/iptables-legacy-save", "-t", "nat"])
        #expect(saved.stdoutLines.filter { $0.contains("EINO") } == Self.savedRules)
        let removed = try namespace.exec([EinoProcess.binary.path, "init", "--remove", "--ipv6", "off", "--backend", "legacy"])
        #expect(removed.status == 0)
        let after = try namespace.exec(["/usr/sbin/iptables-legacy-save", "-t", "nat"])
        #expect(!after.stdout.contains("EINO"))
    }

    @Test func withoutNetAdminItFailsClearly() throws {
        guard let namespace = try TestNamespace.make() else { return }
        defer { namespace.delete() }
        // Root without CAP_NET_ADMIN / CAP_NET_RAW in its bounding set: what a container without them is.
        let result = try namespace.exec(["/usr/bin/setpriv", "--bounding-set", "-net_admin,-net_raw", EinoProcess.binary.path, "init"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("not permitted to change iptables rules"))
        #expect(result.stderr.contains("CAP_NET_ADMIN"))
    }
}

/// A network namespace of the test's own, or nil (with the reason printed) when this machine
/// does not let us make one.
struct TestNamespace {
    let name: String

    static func make() throws -> TestNamespace? {
        let name = "eino-init-test-\(UUID().uuidString.prefix(8).lowercased())"
        let add = try EinoProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "add", name])
        guard add.status == 0 else {
            print("note: skipped, `ip netns add` is not permitted here: \(add.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            return nil
        }
        return TestNamespace(name: name)
    }

    func exec(_ command: [String]) throws -> EinoProcess.Output {
        try EinoProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "exec", name] + command)
    }

    /// Starts a long-running command inside with nsenter, which execs it, so stopping the
    /// returned process stops the command itself.
    func start(_ command: [String]) throws -> ServerProcess {
        try ServerProcess(URL(fileURLWithPath: "/usr/bin/nsenter"), ["--net=/run/netns/\(name)"] + command)
    }

    func delete() {
        _ = try? EinoProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "del", name])
    }
}
