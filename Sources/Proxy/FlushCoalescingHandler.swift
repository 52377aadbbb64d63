import NIOCore

/// Holds a connection's flushes until the event loop has handled the batch of sockets it
/// woke up for, then flushes once. Placed under the HTTP/2 handler of a connection between
/// proxies: every stream flushes its own request or response, and without this each became
/// its own TLS record and its own `write` — one per exchange per direction, where the peer
/// then woke up for each. Under load, the exchanges read in one wake-up now leave together.
/// A flush waits only for the rest of the current tick, never for a timer.
final class FlushCoalescingHandler: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny

    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Tasks run after the loop has dispatched every ready socket of this wake-up.
        context.eventLoop.assumeIsolated().execute {
            self.flushNow(context: context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was written before the close still goes out first.
        flushNow(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func flushNow(context: ChannelHandlerContext) {
        guard flushScheduled else { return }
        flushScheduled = false
        context.flush()
    }
}
