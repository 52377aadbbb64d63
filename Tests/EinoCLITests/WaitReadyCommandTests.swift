import EinoTestSupport
import Foundation
import Testing

/// `eino wait-ready` against a stand-in admin server: `/ready` answers 503 until a flag file
/// exists, then 200; every answer is printed so the test knows it was asked.
@Suite(.serialized) struct WaitReadyCommandTests {
    static let server = """
    import http.server, os, sys
    flag = sys.argv[1]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path in ("/ready", "/live") and os.path.exists(flag) else 503
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            print("answered", self.path, code, flush=True)
        def log_message(self, *args):
            pass
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print("listening", httpd.server_address[1], flush=True)
    httpd.serve_forever()
    """

    private func startServer() throws -> (ServerProcess, URL, String) {
        let flag = FileManager.default.temporaryDirectory.appendingPathComponent("eino-ready-\(UUID().uuidString)")
        let server = try ServerProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", Self.server, flag.path])
        let port = try server.waitForLine(startingWith: "listening ").dropFirst("listening ".count)
        return (server, flag, "127.0.0.1:\(port)")
    }

    @Test func waitsUntilReadyAnswers200() throws {
        let (server, flag, admin) = try startServer()
        defer { server.kill(); try? FileManager.default.removeItem(at: flag) }
        let waiter = try ServerProcess.eino(["wait-ready", "--admin", admin, "--timeout", "30s"])
        defer { waiter.kill() }
        // It has been told 503 (more than once) and is still waiting.
        _ = try poll(timeout: 10, "two 503 answers") { server.lines.filter { $0 == "answered /ready 503" }.count >= 2 ? true : nil }
        #expect(waiter.process.isRunning)
        _ = FileManager.default.createFile(atPath: flag.path, contents: Data())
        #expect(try waiter.waitForExit(timeout: 10) == 0)
        // The stand-in prints after it answers, so its line may trail the client's exit.
        _ = try poll(timeout: 5, "the stand-in's /ready 200") { server.lines.contains("answered /ready 200") ? true : nil }
    }

    @Test func timesOutWithAMessage() throws {
        let (server, flag, admin) = try startServer()
        defer { server.kill() }
        let result = try EinoProcess.eino(["wait-ready", "--admin", admin, "--timeout", "500ms"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("was not ready within 500ms"))
        #expect(result.stderr.contains("/ready answered 503"))
        _ = flag
    }

    @Test func checksAnotherPathForLiveness() throws {
        let (server, flag, admin) = try startServer()
        defer { server.kill(); try? FileManager.default.removeItem(at: flag) }
        _ = FileManager.default.createFile(atPath: flag.path, contents: Data())
        let result = try EinoProcess.eino(["wait-ready", "--admin", admin, "--path", "/live", "--timeout", "5s"])
        #expect(result.status == 0, "\(result.stderr)")
        // The stand-in prints after it answers, so its line may trail the client's exit.
        _ = try poll(timeout: 5, "the stand-in's /live 200") { server.lines.contains("answered /live 200") ? true : nil }
    }

    @Test func nothingListeningTimesOut() throws {
        // A port that was just free: connections are refused.
        let (server, _, admin) = try startServer()
        server.kill()
        try server.waitForExit()
        let result = try EinoProcess.eino(["wait-ready", "--admin", admin, "--timeout", "300ms"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("connect"))
    }

    @Test func badFlagsAreUsageErrors() throws {
        #expect(try EinoProcess.eino(["wait-ready", "--admin", "nowhere"]).status == 2)
        #expect(try EinoProcess.eino(["wait-ready", "--timeout", "soon"]).status == 2)
    }
}
