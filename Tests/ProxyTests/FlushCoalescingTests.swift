import NIOCore
import NIOEmbedded
@testable import Proxy
import Testing

@Suite struct FlushCoalescingTests {
    /// Counts the flushes that get past the coalescer, toward the socket.
    final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var flushes = 0

        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    func channel() throws -> (EmbeddedChannel, FlushCounter) {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        return (channel, counter)
    }

    func written(_ channel: EmbeddedChannel) throws -> [String] {
        var strings: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { strings.append(String(buffer: buffer)) }
        return strings
    }

    @Test func flushesOfOneTickLeaveAsOneAfterTheTick() throws {
        let (channel, counter) = try channel()
        for stream in ["a", "b", "c"] {
            channel.write(ByteBuffer(string: stream), promise: nil)
            channel.flush()
        }
        #expect(try written(channel) == [])
        #expect(counter.flushes == 0)
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["a", "b", "c"])
        #expect(counter.flushes == 1)
        // The next tick flushes again.
        channel.write(ByteBuffer(string: "d"), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["d"])
        #expect(counter.flushes == 2)
        _ = try channel.finish()
    }

    @Test func closeSendsWhatWasFlushedBeforeIt() throws {
        let (channel, counter) = try channel()
        channel.write(ByteBuffer(string: "last words"), promise: nil)
        channel.flush()
        channel.close(promise: nil)
        #expect(try written(channel) == ["last words"])
        #expect(counter.flushes == 1)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
    }
}
