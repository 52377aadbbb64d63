import Identity
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS

/// ALPN values spoken between Eino proxies.
enum MeshALPN {
    /// HTTP (any version from the app) carried as HTTP/2 streams.
    static let http2 = "h2"
    /// Opaque TCP bytes, for the app's port (`--app`).
    static let tcp = "eino-tcp"
    /// Opaque TCP bytes after a two-byte header (big-endian): the port the app was called
    /// on, which the inbound proxy connects to on the app's host.
    static let tcpToPort = "eino-tcp-port"
}

/// The TLS side of one identity: a server value and three client values (one per ALPN, since
/// the client offers exactly the protocol it means to speak). Built once per identity
/// material and shared by every connection; a rotation builds a new one, and connections
/// opened with the old one carry on with it.
final class MeshTLSRuntime: Sendable {
    let identity: SPIFFEID
    let material: IdentityMaterial
    let server: MeshTLSServer
    let httpClient: MeshTLSClient
    let tcpClient: MeshTLSClient
    let tcpToPortClient: MeshTLSClient

    init(material: IdentityMaterial) throws {
        self.material = material
        identity = material.credentials.identity
        server = try MeshTLSServer(
            credentials: material.credentials, trustBundle: material.trustBundle,
            applicationProtocols: [MeshALPN.http2, MeshALPN.tcp, MeshALPN.tcpToPort])
        httpClient = try MeshTLSClient(
            credentials: material.credentials, trustBundle: material.trustBundle, applicationProtocols: [MeshALPN.http2])
        tcpClient = try MeshTLSClient(
            credentials: material.credentials, trustBundle: material.trustBundle, applicationProtocols: [MeshALPN.tcp])
        tcpToPortClient = try MeshTLSClient(
            credentials: material.credentials, trustBundle: material.trustBundle, applicationProtocols: [MeshALPN.tcpToPort])
    }
}

/// Why an upstream TLS connection failed, in words for `eino-error`.
struct MeshUpstreamError: Error {
    let cause: String
}

/// Holds one outgoing connection's verification failure until the handshake fails on the
/// event loop. Written from the verifier's task, read on the loop: a lock, but only on the
/// handshake path (once per connection), never per request.
final class VerificationFailureBox: Sendable {
    private let failure = NIOLockedValueBox<PeerVerificationError?>(nil)

    func record(_ error: PeerVerificationError) { failure.withLockedValue { $0 = error } }

    var recorded: PeerVerificationError? { failure.withLockedValue { $0 } }

    /// The sentence for `eino-error`.
    func cause(for error: Error) -> String {
        guard let recorded else { return "upstream TLS handshake failed: \(error)" }
        if case .identityMismatch(let expected, let actual) = recorded.kind {
            return "upstream identity mismatch: expected \(expected), got \(actual)"
        }
        return "upstream TLS handshake failed: \(recorded.description)"
    }
}

/// Client side: completes `promise` when the handshake finished (or failed), so a connection
/// is handed to requests only once the peer is verified, and a failure can be named.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    typealias InboundOut = Any

    private var promise: EventLoopPromise<Void>?
    private let failure: VerificationFailureBox

    init(promise: EventLoopPromise<Void>, failure: VerificationFailureBox) {
        self.promise = promise
        self.failure = failure
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            let promise = self.promise
            self.promise = nil
            promise?.succeed(())
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    /// A connection that never became active (connect refused) is torn down without
    /// `channelInactive`: the waiter still answers.
    func handlerRemoved(context: ChannelHandlerContext) {
        fail(ChannelError.ioOnClosedChannel)
    }

    private func fail(_ error: Error) {
        guard let promise else { return }
        self.promise = nil
        promise.fail(MeshUpstreamError(cause: failure.cause(for: error)))
    }
}

/// Server side: after the inbound handshake, installs what the negotiated ALPN speaks and
/// hands it the verified client identity.
final class InboundTLSRouter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    typealias InboundOut = Any

    private let tlsHandler: NIOSSLServerHandler
    private let halfClose: HalfCloseAfterHandshake
    private let install: (String?, SPIFFEID?, ChannelHandlerContext) throws -> Void
    private var done = false

    init(tlsHandler: NIOSSLServerHandler, halfClose: HalfCloseAfterHandshake,
         install: @escaping (String?, SPIFFEID?, ChannelHandlerContext) throws -> Void) {
        self.tlsHandler = tlsHandler
        self.halfClose = halfClose
        self.install = install
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event {
            done = true
            do {
                try install(negotiated, MeshTLS.peerIdentity(of: tlsHandler), context)
            } catch {
                context.close(promise: nil)
                return
            }
            halfClose.handshakeCompleted()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A refused client (no certificate, foreign CA …): nothing to answer but a close.
        context.close(promise: nil)
    }
}

/// Server side, in front of the TLS handler: holds the client's TCP half-close back until the
/// handshake is done. A peer proxy relaying opaque TCP may send its last bytes, close_notify
/// and FIN right after its Finished, while this side still verifies its certificate (off the
/// loop); the TLS handler takes a FIN during the handshake as fatal and would drop those bytes
/// unread. Held for at most `limit`: a handshake still unfinished then fails as it would have.
final class HalfCloseAfterHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: TimeAmount
    private var context: ChannelHandlerContext?
    private var handshakeDone = false
    private var held = false
    private var deadline: Scheduled<Void>?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, !handshakeDone {
            held = true
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: limit) { [weak self] in self?.release() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Called when the handshake-completed event passes. The TLS handler decodes what came
    /// after the client's Finished (its close_notify included) only once that event returns,
    /// so a held FIN goes on in the next tick, after it.
    func handshakeCompleted() {
        handshakeDone = true
        guard held, let context else { return }
        context.eventLoop.assumeIsolated().execute { [weak self] in self?.release() }
    }

    private func release() {
        deadline?.cancel()
        deadline = nil
        guard held, let context else { return }
        held = false
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }
}
