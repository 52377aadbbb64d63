import EinoTestSupport
import Foundation
import Testing

@Suite struct DemoAppTests {
    @Test func answersWithItsName() throws {
        let app = try ServerProcess.eino(["demo-app", "--name", "v2", "--listen", "127.0.0.1:0"])
        defer { app.terminate() }
        let address = try app.readyValue("listen", prefix: "eino demo-app ready")
        let response = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-sS", "-i", "http://\(address)/some/path"])
        let lines = response.stdoutLines
        #expect(lines.first == "HTTP/1.1 200 OK")
        #expect(lines.contains("x-served-by: v2"))
        #expect(lines.last == #"{"app":"v2","path":"/some/path"}"#)
    }
}
