import Foundation
import Identity
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Testing
import X509

/// Proxy-to-proxy mTLS with the context builders, over real sockets on loopback: NIO on both
/// sides, then the real `openssl s_client` as a client that tries to get in without the
/// right certificate.
@Suite(.serialized) struct MeshTLSTests {
    static let alpn = ["h2", "eino-tcp"]

    let authority = try! CertificateAuthority.create(trustDomain: "cluster.local")

    @Test func handshakeCompletesAndEachSideSeesTheOther() async throws {
        let server = try await TestServer.start(credentials: Fixture.credentials("web", from: authority), bundle: authority.trustBundle)
        defer { server.stop() }
        let client = try MeshTLSClient(
            credentials: Fixture.credentials("client", from: authority), trustBundle: authority.trustBundle,
            applicationProtocols: ["h2"])

        let result = try await TestClient.exchange(client, port: server.port, expecting: Fixture.id("web"), message: "ping")
        #expect(result.serverIdentity == Fixture.id("web"))
        #expect(result.negotiatedProtocol == "h2")
        #expect(result.echo == "ping")
        let seen = try #require(server.handshakes.value.first)
        #expect(seen.clientIdentity == Fixture.id("client"))
        #expect(seen.negotiatedProtocol == "h2")
        #expect(seen.tlsVersion == .tlsv13)
        #expect(server.failures.value.isEmpty)
    }

    @Test func clientRefusesAServerWithAnotherIdentity() async throws {
        let server = try await TestServer.start(credentials: Fixture.credentials("db", from: authority), bundle: authority.trustBundle)
        defer { server.stop() }
        let failures = Locked<[PeerVerificationError]>([])
        let client = try MeshTLSClient(
            credentials: Fixture.credentials("client", from: authority), trustBundle: authority.trustBundle,
            applicationProtocols: ["h2"], onFailure: { error in failures.withValue { $0.append(error) } })

        await #expect(throws: (any Error).self) {
            try await TestClient.exchange(client, port: server.port, expecting: Fixture.id("web"), message: "ping")
        }
        #expect(failures.value.map(\.kind) == [.identityMismatch(expected: Fixture.id("web"), actual: Fixture.id("db"))])
        #expect(server.handshakes.value.isEmpty)
    }

    @Test(arguments: ["foreign CA", "expired", "not yet valid"])
    func serverRefusesABadClientCertificate(_ problem: String) async throws {
        let server = try await TestServer.start(credentials: Fixture.credentials("web", from: authority), bundle: authority.trustBundle)
        defer { server.stop() }
        let now = Date()
        let credentials: WorkloadCredentials
        let expected: PeerVerificationError.Kind
        switch problem {
        case "foreign CA":
            credentials = try Fixture.credentials("client", from: CertificateAuthority.create(trustDomain: "cluster.local"))
            expected = .untrusted
        case "expired":
            credentials = try Fixture.credentials("client", from: authority, notBefore: now - 7200, notAfter: now - 3600)
            expected = .expired
        default:
            credentials = try Fixture.credentials("client", from: authority, notBefore: now + 3600, notAfter: now + 7200)
            expected = .notYetValid
        }
        // The client itself would accept the server; only the server's check can stop it.
        let client = try MeshTLSClient(credentials: credentials, trustBundle: authority.trustBundle, applicationProtocols: ["h2"])
        await #expect(throws: (any Error).self) {
            try await TestClient.exchange(client, port: server.port, expecting: Fixture.id("web"), message: "ping")
        }
        try await server.waitForFailures(1)
        #expect(server.failures.value.map(\.kind) == [expected])
        #expect(server.handshakes.value.isEmpty)
    }

    @Test func newConnectionsUseTheRotatedCertificateAndBundle() async throws {
        let first = try Fixture.credentials("web", from: authority)
        let server = try await TestServer.start(credentials: first, bundle: authority.trustBundle)
        defer { server.stop() }
        let clientCredentials = try Fixture.credentials("client", from: authority)
        let oldClient = try MeshTLSClient(credentials: clientCredentials, trustBundle: authority.trustBundle, applicationProtocols: ["h2"])
        #expect(try await TestClient.exchange(oldClient, port: server.port, expecting: Fixture.id("web"), message: "a")
            .serverCertificate == first.leaf)

        // Anchor rotation step 2: both roots everywhere; step 3: the server is re-issued
        // under the new root.
        let next = try CertificateAuthority.create(trustDomain: "cluster.local")
        let widened = authority.trustBundle.adding(next.certificate)
        let second = try Fixture.credentials("web", from: next)
        try server.rotate(to: IdentityMaterial(credentials: second, trustBundle: widened))

        let newClient = try MeshTLSClient(credentials: clientCredentials, trustBundle: widened, applicationProtocols: ["h2"])
        let after = try await TestClient.exchange(newClient, port: server.port, expecting: Fixture.id("web"), message: "b")
        #expect(after.serverCertificate == second.leaf)
        #expect(after.echo == "b")
        // A client still on the old bundle refuses the new certificate: roots must be
        // added everywhere before anyone is issued from them.
        await #expect(throws: (any Error).self) {
            try await TestClient.exchange(oldClient, port: server.port, expecting: Fixture.id("web"), message: "c")
        }
        // The server, on the widened bundle, still accepts clients issued by the old root.
        #expect(server.handshakes.value.map(\.clientIdentity) == [Fixture.id("client"), Fixture.id("client")])
    }

    // MARK: openssl s_client as the peer

    @Test func opensslWithAValidClientCertificateGetsThrough() async throws {
        // The control for the refusals below: the same command line with a good certificate works.
        let run = try await sClient(["-tls1_3", "-cert", "client.pem", "-key", "client.key"])
        #expect(run.output.status == 0, "\(run.output.stderr)")
        #expect(run.output.stderr.contains("CONNECTION ESTABLISHED\nProtocol version: TLSv1.3\n"))
        #expect(run.output.stdout == "ping\n")
        #expect(run.serverHandshakes == [Fixture.id("client")])
        #expect(run.serverFailures.isEmpty)
    }

    @Test func opensslWithoutAClientCertificateFailsOnceItReads() async throws {
        let run = try await sClient(["-tls1_3"])
        // TLS 1.3: the client considers the handshake done before the server has judged its
        // (missing) certificate; the refusal arrives as alert 116 when it reads.
        #expect(run.output.stderr.contains("CONNECTION ESTABLISHED\nProtocol version: TLSv1.3\n"))
        #expect(run.output.status == 1)
        #expect(run.output.stderr.contains("tlsv13 alert certificate required"), "\(run.output.stderr)")
        #expect(run.output.stdout == "")
        #expect(run.serverHandshakes.isEmpty)
    }

    @Test func opensslWithTLS12Fails() async throws {
        let run = try await sClient(["-tls1_2", "-cert", "client.pem", "-key", "client.key"])
        #expect(run.output.status == 1)
        #expect(!run.output.stderr.contains("CONNECTION ESTABLISHED"))
        #expect(run.output.stderr.contains("tlsv1 alert protocol version"), "\(run.output.stderr)")
        #expect(run.output.stdout == "")
        #expect(run.serverHandshakes.isEmpty)
    }

    @Test func opensslWithACertificateFromAForeignCAFails() async throws {
        let run = try await sClient(["-tls1_3", "-cert", "foreign.pem", "-key", "foreign.key"])
        #expect(run.output.status == 1)
        #expect(run.output.stderr.contains("alert certificate unknown"), "\(run.output.stderr)")
        #expect(run.output.stdout == "")
        #expect(run.serverHandshakes.isEmpty)
        #expect(run.serverFailures == [.untrusted])
    }

    @Test func opensslWithAnExpiredCertificateFails() async throws {
        let run = try await sClient(["-tls1_3", "-cert", "expired.pem", "-key", "expired.key"])
        #expect(run.output.status == 1)
        #expect(run.output.stderr.contains("alert certificate unknown"), "\(run.output.stderr)")
        #expect(run.output.stdout == "")
        #expect(run.serverHandshakes.isEmpty)
        #expect(run.serverFailures == [.expired])
    }

    struct SClientRun {
        var output: Subprocess.Output
        var serverHandshakes: [SPIFFEID?]
        var serverFailures: [PeerVerificationError.Kind]
    }

    /// Runs `openssl s_client` against a fresh server holding `web`, sends "ping" and keeps
    /// reading until the server closes (`-ign_eof`), so a late rejection is seen. `-brief`
    /// prints the connection summary on stderr and leaves stdout to the echoed data.
    func sClient(_ arguments: [String]) async throws -> SClientRun {
        let directory = try Fixture.temporaryDirectory("sclient")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try authority.trustBundle.write(file: directory + "/ca.pem")
        try Fixture.credentials("client", from: authority).write(certificateFile: directory + "/client.pem", keyFile: directory + "/client.key")
        let foreign = try CertificateAuthority.create(trustDomain: "cluster.local")
        try Fixture.credentials("client", from: foreign).write(certificateFile: directory + "/foreign.pem", keyFile: directory + "/foreign.key")
        let now = Date()
        try Fixture.credentials("client", from: authority, notBefore: now - 7200, notAfter: now - 3600)
            .write(certificateFile: directory + "/expired.pem", keyFile: directory + "/expired.key")

        let server = try await TestServer.start(credentials: Fixture.credentials("web", from: authority), bundle: authority.trustBundle)
        defer { server.stop() }
        let output = try Subprocess.run(
            "/usr/bin/openssl",
            ["s_client", "-connect", "127.0.0.1:\(server.port)", "-CAfile", "ca.pem", "-brief", "-ign_eof", "-alpn", "h2"] + arguments,
            directory: directory, stdin: "ping\n", timeout: 20)
        #expect(!output.timedOut)
        return SClientRun(output: output, serverHandshakes: server.handshakes.value.map(\.clientIdentity),
                          serverFailures: server.failures.value.map(\.kind))
    }

    // MARK: measurement

    /// Prints the handshake rate of the context pair: a new TCP connection, a full mTLS
    /// handshake with verification on both sides and a one-byte echo, repeated for about two
    /// seconds, one connection at a time and eight at a time. Not asserted.
    @Test func handshakeRate() async throws {
        let server = try await TestServer.start(credentials: Fixture.credentials("web", from: authority), bundle: authority.trustBundle)
        defer { server.stop() }
        let client = try MeshTLSClient(
            credentials: Fixture.credentials("client", from: authority), trustBundle: authority.trustBundle,
            applicationProtocols: ["h2"])
        for concurrency in [1, 8] {
            let start = ContinuousClock.now
            let deadline = start + .seconds(2)
            let count = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        var done = 0
                        while ContinuousClock.now < deadline {
                            _ = try await TestClient.exchange(client, port: server.port, expecting: Fixture.id("web"), message: "x")
                            done += 1
                        }
                        return done
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("identity: \(count) mTLS handshakes in \(String(format: "%.2f", seconds)) s with \(concurrency) at a time = \(Int(Double(count) / seconds)) handshakes/s")
        }
        #expect(server.failures.value.isEmpty)
    }
}

// MARK: - peers

/// An mTLS echo server on 127.0.0.1, port 0: echoes the first read, then closes. Records each
/// completed handshake (the verified client identity) and each refusal.
final class TestServer: Sendable {
    struct Handshake: Sendable {
        var clientIdentity: SPIFFEID?
        var negotiatedProtocol: String?
        var tlsVersion: TLSVersion?
    }

    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let handshakes: Locked<[Handshake]>
    let failures: Locked<[PeerVerificationError]>
    private let current: Locked<MeshTLSServer>

    var port: Int { channel.localAddress!.port! }

    private init(
        group: MultiThreadedEventLoopGroup, channel: Channel, handshakes: Locked<[Handshake]>,
        failures: Locked<[PeerVerificationError]>, current: Locked<MeshTLSServer>
    ) {
        self.group = group
        self.channel = channel
        self.handshakes = handshakes
        self.failures = failures
        self.current = current
    }

    static func start(credentials: WorkloadCredentials, bundle: TrustBundle) async throws -> TestServer {
        let handshakes = Locked<[Handshake]>([])
        let failures = Locked<[PeerVerificationError]>([])
        let current = Locked(try makeTLS(IdentityMaterial(credentials: credentials, trustBundle: bundle), failures: failures))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Each connection takes whatever context is current when it is accepted.
                    let handler = current.value.makeHandler()
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(EchoOnceHandler(tls: handler) { handshake in
                        handshakes.withValue { $0.append(handshake) }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestServer(group: group, channel: channel, handshakes: handshakes, failures: failures, current: current)
    }

    private static func makeTLS(_ material: IdentityMaterial, failures: Locked<[PeerVerificationError]>) throws -> MeshTLSServer {
        try MeshTLSServer(
            credentials: material.credentials, trustBundle: material.trustBundle, applicationProtocols: MeshTLSTests.alpn,
            onFailure: { error in failures.withValue { $0.append(error) } })
    }

    /// Swaps in new credentials and bundle, as a proxy does on rotation.
    func rotate(to material: IdentityMaterial) throws {
        let tls = try Self.makeTLS(material, failures: failures)
        current.withValue { $0 = tls }
    }

    /// The refusal callback runs off the event loop; give it a moment to be recorded.
    func waitForFailures(_ count: Int) async throws {
        for _ in 0..<200 where failures.value.count < count {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class EchoOnceHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let tls: NIOSSLServerHandler
    let onHandshake: (TestServer.Handshake) -> Void

    init(tls: NIOSSLServerHandler, onHandshake: @escaping (TestServer.Handshake) -> Void) {
        self.tls = tls
        self.onHandshake = onHandshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
            onHandshake(.init(clientIdentity: MeshTLS.peerIdentity(of: tls), negotiatedProtocol: negotiated, tlsVersion: tls.tlsVersion))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

enum TestClient {
    struct Result: Sendable {
        var serverIdentity: SPIFFEID?
        var serverCertificate: Certificate?
        var negotiatedProtocol: String?
        var echo: String
    }

    /// Connects, completes the handshake, sends `message` and returns what came back before
    /// the server closed.
    static func exchange(_ client: MeshTLSClient, port: Int, expecting: SPIFFEID, message: String) async throws -> Result {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: Result.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try client.makeHandler(expecting: expecting)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(ClientHandler(tls: tls, message: message, done: done))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        return try await done.futureResult.get()
    }

    final class ClientHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let tls: NIOSSLClientHandler
        let message: String
        let done: EventLoopPromise<Result>
        var result = Result(serverIdentity: nil, serverCertificate: nil, negotiatedProtocol: nil, echo: "")
        var handshook = false

        init(tls: NIOSSLClientHandler, message: String, done: EventLoopPromise<Result>) {
            self.tls = tls
            self.message = message
            self.done = done
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
                handshook = true
                result.serverIdentity = MeshTLS.peerIdentity(of: tls)
                result.serverCertificate = try? tls.peerCertificate.map { try Certificate(derEncoded: $0.toDERBytes()) }
                result.negotiatedProtocol = negotiated
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: message)), promise: nil)
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            result.echo += buffer.readString(length: buffer.readableBytes) ?? ""
        }

        func channelInactive(context: ChannelHandlerContext) {
            if handshook && !result.echo.isEmpty {
                done.succeed(result)
            } else {
                done.fail(ChannelError.eof)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(error)
            context.close(promise: nil)
        }
    }
}

/// A value guarded by a lock, shared between event loops and the test.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }

    func withValue<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&stored) } }
}

/// Runs a process with a deadline; tests must not hang on a peer that never exits.
enum Subprocess {
    struct Output: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool
    }

    static func run(_ path: String, _ arguments: [String], directory: String, stdin: String, timeout: TimeInterval) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let timedOut = Locked(false)
        let timer = DispatchWorkItem {
            if process.isRunning {
                timedOut.withValue { $0 = true }
                process.terminate()
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let errorData = Locked(Data())
        let errorDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let data = error.fileHandleForReading.readDataToEndOfFile()
            errorData.withValue { $0 = data }
            errorDone.signal()
        }
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        errorDone.wait()
        process.waitUntilExit()
        timer.cancel()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errorData.value, as: UTF8.self), timedOut: timedOut.value)
    }
}
