import ArgumentParser
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MeshConfig

/// `eino demo-app --name v1`: a tiny HTTP app for the demo and for trying splits and mirrors
/// by hand. Every answer says which app served it, in the body and in `x-served-by`;
/// `/items/N` answers an item with a price, which `--diverge-every` gets wrong on purpose.
struct DemoAppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-app",
        abstract: "Serve a tiny HTTP app that names itself in every answer.",
        discussion: "Prints `eino demo-app ready listen=HOST:PORT` once listening.")

    @Option(help: "The name it answers with (e.g. v1).")
    var name: String

    @Option(help: "HOST:PORT to listen on; port 0 picks a free one.")
    var listen = "127.0.0.1:8080"

    @Option(name: .customLong("diverge-every"), help: "Answer a wrong price for every Nth item (/items/N), as a buggy new version would.")
    var divergeEvery: Int?

    func validate() throws {
        if let divergeEvery, divergeEvery < 1 { throw ValidationError("--diverge-every must be at least 1") }
    }

    func run() async throws {
        guard case .success(let (host, port)) = Endpoint.parseAddress(listen) else {
            throw ValidationError("--listen must be HOST:PORT, got \(listen)")
        }
        let name = self.name
        let divergeEvery = self.divergeEvery
        let router = Router()
        let respond: @Sendable (String) -> Response = { body in
            Response(status: .ok, headers: [.contentType: "application/json", HTTPField.Name("x-served-by")!: name],
                     body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
        }
        let answer: @Sendable (Request, BasicRequestContext) -> Response = { request, _ in
            respond(#"{"app":"\#(name)","path":"\#(request.uri.path)"}"#)
        }
        router.get("/", use: answer)
        router.get("/items/:item") { request, context -> Response in
            let item = Int(context.parameters.get("item") ?? "") ?? 0
            let wrong = divergeEvery.map { item % $0 == 0 } ?? false
            return respond(#"{"app":"\#(name)","item":\#(item),"price":\#(item * 100 + (wrong ? 1 : 0)),"currency":"EUR"}"#)
        }
        router.get("**", use: answer)
        var logger = Logger(label: "eino.demo-app")
        logger.logLevel = .warning
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "eino-demo-app"),
            onServerRunning: { channel in
                print("eino demo-app ready listen=\(channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? listen)")
                fflush(nil)
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
