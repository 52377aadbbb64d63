import NIOCore
import NIOHTTP1
import NIOHTTP2
import Telemetry

/// First handler of an HTTP/1 downstream connection: answers 408 and closes when a request
/// head takes longer than `--header-timeout`. Sits before the HTTP decoder so it can write
/// its answer as raw bytes whatever state the decoder is in. `HTTPProxyHandler` tells it
/// directly when a head arrived and when an exchange completed (same connection, same loop).
final class HeaderTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let onReject: () -> Void
    private var machine: HeaderTimeoutStateMachine
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// Made as the connection is set up: its first head is read from now.
    init(timeout: TimeAmount, onReject: @escaping () -> Void) {
        machine = HeaderTimeoutStateMachine(timeout: timeout, now: .now())
        self.onReject = onReject
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        perform(machine.start())
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.bytesReceived(now: .now()))
        if machine.state == .closed { return }
        context.fireChannelRead(data)
    }

    func headReceived() {
        machine.headReceived()
    }

    func exchangeCompleted() {
        machine.exchangeCompleted()
    }

    private func perform(_ action: HeaderTimeoutStateMachine.Action) {
        switch action {
        case .none:
            break
        case .scheduleTimer(let deadline):
            guard let context else { return }
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                guard let self else { return }
                self.timer = nil
                self.perform(self.machine.timerFired(now: .now()))
            }
        case .reject:
            guard let context else { return }
            onReject()
            let body = "request header timeout\n"
            let text = "HTTP/1.1 408 Request Timeout\r\neino-error: request header timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}

/// Reads the first bytes of a connection, decides what protocol it speaks, installs the
/// handlers for it and replays what it read. Bounded by a byte budget and a timeout.
final class ProtocolDetectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var machine: ProtocolDetectionStateMachine
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private let timeout: TimeAmount
    private let skip: Bool
    private let install: (DetectedProtocol, ChannelHandlerContext) throws -> Void

    /// `skip`: an opaque port, forwarded without reading first.
    init(budget: Int, timeout: TimeAmount, skip: Bool, install: @escaping (DetectedProtocol, ChannelHandlerContext) throws -> Void) {
        machine = ProtocolDetectionStateMachine(budget: budget)
        self.timeout = timeout
        self.skip = skip
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false

    /// Begins once the connection is active: an opaque port is forwarded at once (its
    /// upstream connection must not race the downstream's activation), others get a clock.
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        if skip {
            decide(.opaque, context: context)
            return
        }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self else { return }
            self.decide(self.machine.timedOut(), context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        guard machine.decided == nil else { return }
        if case .detected(let found) = machine.received(buffered!.readableBytesView) {
            decide(found, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, machine.decided == nil {
            if buffered == nil {
                context.close(promise: nil)
                return
            }
            let pipeline = context.pipeline.syncOperations
            decide(machine.inputClosed(), context: context)
            pipeline.fireUserInboundEventTriggered(event)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private var done = false

    private func decide(_ found: DetectedProtocol, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        timer?.cancel()
        timer = nil
        do {
            try install(found, context)
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// One side of an opaque TCP relay. Two of them, one on each channel, pass bytes to each
/// other, hold reads while the other side cannot write, and pass half-closes on. The
/// downstream side is created before its partner exists: until then it keeps what it
/// receives (at most one read, since it holds further reads) and replays it on pairing.
final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) weak var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var wrote = false
    private var early: [NIOAny] = []
    private var earlyInputClosed = false
    private var inputClosed = false
    private var outputClosed = false

    init() {}

    /// Joins two relays; what either one kept before is sent on.
    static func pair(_ downstream: RelayHandler, _ upstream: RelayHandler) {
        downstream.partner = upstream
        upstream.partner = downstream
        for (from, to) in [(downstream, upstream), (upstream, downstream)] {
            let early = from.early
            from.early = []
            for data in early { to.partnerWrite(data) }
            to.partnerFlush()
            if from.earlyInputClosed { to.partnerInputClosed() }
        }
        downstream.kickRead()
        upstream.kickRead()
    }

    /// Issues a read held while there was no partner.
    func kickRead() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    fileprivate func partnerWrite(_ data: NIOAny) {
        guard let context else { return }
        context.write(data, promise: nil)
        wrote = true
    }

    fileprivate func partnerFlush() {
        guard wrote else { return }
        wrote = false
        context?.flush()
    }

    private func partnerWritabilityChanged(_ writable: Bool) {
        if writable, pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    fileprivate func partnerInputClosed() {
        // The other side finished sending: finish sending on this one.
        afterPendingWrites { context in
            self.outputClosed = true
            context.close(mode: .output, promise: nil)
            if self.inputClosed { context.close(promise: nil) }
        }
    }

    private func partnerClosed() {
        afterPendingWrites { $0.close(promise: nil) }
    }

    /// Runs `body` once what was written to this side so far has gone out. A close must wait
    /// for it: a full close drops the writes still pending, and so does an output close on a
    /// channel whose input is closed too (a socket's EOF, a TLS peer's close_notify), which
    /// becomes a full one. A TLS peer that sends close_notify after its last bytes is closed
    /// by NIOSSL at once, so the other side's relay sees it go while it still has them to send.
    private func afterPendingWrites(_ body: @escaping (ChannelHandlerContext) -> Void) {
        guard let context else { return }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in
            guard let context = self.context else { return }
            body(context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let partner {
            partner.partnerWrite(data)
        } else {
            early.append(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        partner?.partnerWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        guard let partner else {
            pendingRead = true
            return
        }
        if let partnerContext = partner.context, !partnerContext.channel.isWritable {
            pendingRead = true
            return
        }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            if let partner {
                partner.partnerFlush()
                partner.partnerInputClosed()
            } else {
                earlyInputClosed = true
            }
            if outputClosed { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Inbound opaque TCP from a peer proxy (ALPN `eino-tcp-port`): reads the two-byte port
/// header, hands the port over once, then passes whatever followed it on and leaves.
/// The handler `onPort` adds after it (a relay) gets the rest of the stream.
final class DestinationPortReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var pending: ByteBuffer?
    private let onPort: (Int, ChannelHandlerContext) throws -> Void

    init(onPort: @escaping (Int, ChannelHandlerContext) throws -> Void) {
        self.onPort = onPort
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var earlier = pending {
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        guard let port = buffer.readInteger(as: UInt16.self) else {
            pending = buffer
            return
        }
        pending = nil
        do {
            try onPort(Int(port), context)
        } catch {
            context.close(promise: nil)
            return
        }
        if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The peer finished before saying where to: nothing to relay.
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// First handler of every downstream connection: counts it and its bytes in the loop's
/// metrics.
final class ConnectionMetricsHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let metrics: LoopMetrics
    private let direction: String
    private var received: UInt64 = 0
    private var sent: UInt64 = 0
    private var open = true

    init(metrics: LoopMetrics, direction: String) {
        self.metrics = metrics
        self.direction = direction
        metrics.connectionOpened(direction: direction)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received &+= UInt64(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        sent &+= UInt64(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if open {
            open = false
            metrics.connectionClosed(direction: direction, read: received, written: sent)
        }
        context.fireChannelInactive()
    }
}
