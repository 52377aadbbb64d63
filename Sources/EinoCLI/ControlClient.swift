import AsyncHTTPClient
import ArgumentParser
import ControlPlane
import Foundation
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import NIOSSL

/// Where the control plane is and how to prove we are its administrator (CLI.md).
struct ControlOptions: ParsableArguments {
    @Option(help: "Control plane URL (env EINO_CONTROL).")
    var control: String = ProcessInfo.processInfo.environment["EINO_CONTROL"] ?? "https://127.0.0.1:7443"

    @Option(help: "Directory holding ca.pem and admin.token (env EINO_DATA_DIR).")
    var dataDir: String = ProcessInfo.processInfo.environment["EINO_DATA_DIR"] ?? "./.eino"

    @Option(help: "Trust anchor of the control plane (default DATA_DIR/ca.pem).")
    var caFile: String?

    @Option(help: "Admin token file (default DATA_DIR/admin.token).")
    var tokenFile: String?
}

/// A short-lived HTTPS client for one CLI command: trusts only the control plane's CA and
/// checks the host name, so no workload certificate (which has no DNS or IP names) can
/// pose as the control plane and collect the admin token.
struct ControlClient {
    let base: String
    let token: String
    let client: HTTPClient

    init(_ options: ControlOptions) throws {
        let caPath = options.caFile ?? "\(options.dataDir)/ca.pem"
        let tokenPath = options.tokenFile ?? "\(options.dataDir)/admin.token"
        guard let tokenData = FileManager.default.contents(atPath: tokenPath) else {
            throw CLIError("cannot read the admin token at \(tokenPath) (set --data-dir or --token-file)")
        }
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMFile(caPath)
        } catch {
            throw CLIError("cannot read the control plane's CA at \(caPath) (set --data-dir or --ca-file): \(error)")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(roots)
        tls.minimumTLSVersion = .tlsv13
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        base = options.control.hasSuffix("/") ? String(options.control.dropLast()) : options.control
        token = String(decoding: tokenData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends a request; decodes `Reply` on 2xx, throws the server's `ErrorResponse` otherwise.
    func send<Reply: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<Int>.none, as: Reply.Type) async throws -> Reply {
        do {
            let reply = try await perform(method, path, body: body, as: Reply.self)
            try await client.shutdown()
            return reply
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func perform<Reply: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable)?, as: Reply.Type) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach the control plane at \(base): \(error)")
        }
        let data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            if let failure = try? JSONDecoder().decode(ControlAPI.ErrorResponse.self, from: data) { throw failure }
            throw CLIError("control plane answered \(response.status.code): \(String(decoding: data, as: UTF8.self))")
        }
        return try JSONDecoder().decode(Reply.self, from: data)
    }
}

/// A refusal the CLI prints as `error: …` and exits 1 for.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
