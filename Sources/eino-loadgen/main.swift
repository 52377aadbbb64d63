// eino-loadgen: an open-loop HTTP/1.1 load generator for the benchmark (bench/).
//
// Requests are due at evenly spaced instants (start + i / rate) whatever the server does;
// each goes out on an idle keep-alive connection, or waits in a queue until one is free.
// Latency is measured from the instant a request was due, not from when it was written, so a
// server that stalls is charged for every request that stalled behind it (no coordinated
// omission). One event loop thread; pin it with taskset.
//
//   eino-loadgen --url http://127.0.0.1:8080/ [--host web] --rate 1000 --duration 30
//                [--warmup 2] [--connections 16] [--min-ratio 0.98]
//
// Prints one JSON object on stdout. Exit status: 0 ok, 1 errors or requests left unanswered,
// 2 usage, 3 the achieved rate was below min-ratio × rate.

import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Options {
    var host = "127.0.0.1"
    var port = 80
    var path = "/"
    var hostHeader: String?
    var rate = 1000.0
    var duration = 30.0
    var warmup = 2.0
    var connections = 16
    var minRatio = 0.98
    var drain = 10.0
}

/// A line on standard error (fd 2 directly: the C `stderr` global is not concurrency-safe).
func warn(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String, status: Int32 = 2) -> Never {
    warn("eino-loadgen: \(message)")
    exit(status)
}

func parseOptions() -> Options {
    var options = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> String {
        guard let v = args.popFirst() else { fail("\(name) needs a value") }
        return v
    }
    func number(_ name: String) -> Double {
        guard let d = Double(value(name)), d.isFinite, d >= 0 else { fail("\(name) needs a non-negative number") }
        return d
    }
    while let arg = args.popFirst() {
        switch arg {
        case "--url":
            var rest = Substring(value(arg))
            guard rest.hasPrefix("http://") else { fail("--url must start with http://") }
            rest = rest.dropFirst("http://".count)
            let authority = rest.prefix { $0 != "/" }
            options.path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
            if let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) {
                options.host = String(authority[..<colon])
                options.port = port
            } else {
                options.host = String(authority)
            }
        case "--host": options.hostHeader = value(arg)
        case "--rate": options.rate = number(arg)
        case "--duration": options.duration = number(arg)
        case "--warmup": options.warmup = number(arg)
        case "--connections": options.connections = Int(number(arg))
        case "--min-ratio": options.minRatio = number(arg)
        case "--drain": options.drain = number(arg)
        case "-h", "--help":
            print("usage: eino-loadgen --url http://HOST:PORT/PATH [--host NAME] --rate RPS --duration S [--warmup S] [--connections N] [--min-ratio R] [--drain S]")
            exit(0)
        default: fail("unknown argument \(arg)")
        }
    }
    if options.rate <= 0 { fail("--rate must be positive") }
    if options.duration <= 0 { fail("--duration must be positive") }
    if options.connections < 1 { fail("--connections must be at least 1") }
    return options
}

/// All mutable state lives on the one event loop; nothing touches it from elsewhere.
final class LoadGenerator: @unchecked Sendable {
    let options: Options
    let loop: EventLoop
    let bootstrap: ClientBootstrap
    let head: HTTPRequestHead
    let done: EventLoopPromise<Void>

    let interval: Double            // ns between due instants
    let total: Int                  // requests including warmup
    let warmupCount: Int
    var start: UInt64 = 0           // ns, NIODeadline clock

    var channels: [Channel?]
    var inFlight: [Int]             // request index per connection, -1 when idle
    var sentAt: [UInt64]
    var idle: [Int] = []            // stack: the most recently used connection goes first
    var queue: [Int] = []           // due requests waiting for a free connection
    var queueHead = 0
    var next = 0                    // next request index to fall due
    var finished = false

    var corrected = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    var uncorrected = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    /// How late requests went out after falling due: queueing behind busy connections plus the
    /// generator's own wake-up delay. Diagnostic only; already part of `corrected`.
    var lag = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    var completedAll = 0            // including warmup
    var completedMeasured = 0
    var errors = 0
    var badStatus = 0
    var reconnects = 0
    var maxQueue = 0
    var lastCompletion: UInt64 = 0

    init(options: Options, loop: EventLoop, bootstrap: ClientBootstrap) {
        self.options = options
        self.loop = loop
        self.bootstrap = bootstrap
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: options.hostHeader ?? "\(options.host):\(options.port)")
        headers.add(name: "User-Agent", value: "eino-loadgen")
        head = HTTPRequestHead(version: .http1_1, method: .GET, uri: options.path, headers: headers)
        done = loop.makePromise()
        interval = 1e9 / options.rate
        warmupCount = Int(options.rate * options.warmup)
        total = warmupCount + max(1, Int(options.rate * options.duration))
        channels = Array(repeating: nil, count: options.connections)
        inFlight = Array(repeating: -1, count: options.connections)
        sentAt = Array(repeating: 0, count: options.connections)
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    func due(_ index: Int) -> UInt64 { start + UInt64(Double(index) * interval) }

    func connect(_ index: Int) -> EventLoopFuture<Void> {
        bootstrap.connect(host: options.host, port: options.port).map { channel in
            self.loop.assertInEventLoop()
            self.channels[index] = channel
            if let handler = try? channel.pipeline.syncOperations.handler(type: ConnectionHandler.self) {
                handler.bind(self, index)
            }
            if !self.finished { self.release(index) }
        }
    }

    func begin() {
        start = Self.now() + 1_000_000
        loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(start)) { self.tick() }
        // Give up waiting for stragglers a while after the last request fell due.
        let end = due(total) + UInt64(options.drain * 1e9)
        loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(end)) { self.finish() }
    }

    func tick() {
        guard !finished else { return }
        let now = Self.now()
        while next < total && due(next) <= now {
            dispatch(next)
            next += 1
        }
        if next < total {
            loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(due(next))) { self.tick() }
        } else {
            finishIfDone()
        }
    }

    func dispatch(_ request: Int) {
        if let connection = idle.popLast() {
            send(request, on: connection)
        } else {
            queue.append(request)
            maxQueue = max(maxQueue, queue.count - queueHead)
        }
    }

    func send(_ request: Int, on connection: Int) {
        guard let channel = channels[connection] else { queue.append(request); return }
        inFlight[connection] = request
        sentAt[connection] = Self.now()
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// A connection is free: give it the oldest waiting request, else park it.
    func release(_ connection: Int) {
        inFlight[connection] = -1
        if queueHead < queue.count {
            let request = queue[queueHead]
            queueHead += 1
            if queueHead > 4096 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            send(request, on: connection)
        } else {
            idle.append(connection)
        }
    }

    func completed(_ connection: Int, status: UInt) {
        let request = inFlight[connection]
        guard request >= 0 else { errors += 1; return }
        let now = Self.now()
        completedAll += 1
        if !(200..<400).contains(status) { badStatus += 1 }
        if request >= warmupCount {
            completedMeasured += 1
            corrected.record(min(now &- due(request), corrected.highestTrackableValue))
            uncorrected.record(min(now &- sentAt[connection], uncorrected.highestTrackableValue))
            lag.record(min(sentAt[connection] &- min(sentAt[connection], due(request)), lag.highestTrackableValue))
            lastCompletion = now
        }
        release(connection)
        finishIfDone()
    }

    func closed(_ connection: Int) {
        guard !finished else { return }
        // The request on it (if any) is lost; count it and put a new connection in its place.
        if inFlight[connection] >= 0 { errors += 1 }
        inFlight[connection] = -1
        channels[connection] = nil
        idle.removeAll { $0 == connection }
        reconnects += 1
        if reconnects > 1_000 { warn("eino-loadgen: too many reconnects"); finish(); return }
        connect(connection).whenFailure { error in
            warn("eino-loadgen: reconnect failed: \(error)")
            self.errors += 1
        }
    }

    func finishIfDone() {
        if next >= total && queueHead >= queue.count && !inFlight.contains(where: { $0 >= 0 }) { finish() }
    }

    func finish() {
        guard !finished else { return }
        finished = true
        for channel in channels { channel?.close(promise: nil) }
        done.succeed(())
    }
}

final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var generator: LoadGenerator?
    var index = 0
    var status: UInt = 0

    func bind(_ generator: LoadGenerator, _ index: Int) {
        self.generator = generator
        self.index = index
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = head.status.code
        case .body: break
        case .end: generator?.completed(index, status: status)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        generator?.closed(index)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Nanoseconds as milliseconds with three decimals (microsecond resolution).
func ms(_ ns: UInt64) -> String {
    let us = (ns + 500) / 1_000
    let fraction = String(us % 1_000)
    return "\(us / 1_000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

let options = parseOptions()

#if os(Linux)
// Linux lets a timer fire up to 50 µs late by default (timer slack); that would show up as
// latency in every scenario. Ask for 1 ns before the event loop thread exists, so that it
// inherits it (best effort).
let slack = open("/proc/self/timerslack_ns", O_WRONLY)
if slack >= 0 {
    _ = write(slack, "1", 1)
    close(slack)
}
#endif
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let loop = group.next()
let bootstrap = ClientBootstrap(group: loop)
    .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler())
        }
    }
let generator = LoadGenerator(options: options, loop: loop, bootstrap: bootstrap)


do {
    let connected = try loop.submit {
        EventLoopFuture.andAllSucceed((0..<options.connections).map { generator.connect($0) }, on: loop)
    }.wait()
    try connected.wait()
} catch {
    fail("cannot connect to \(options.host):\(options.port): \(error)", status: 1)
}
loop.execute { generator.begin() }
try generator.done.futureResult.wait()

let result: String = try loop.submit {
    let g = generator
    let measured = g.total - g.warmupCount
    let window = g.lastCompletion > g.due(g.warmupCount) ? Double(g.lastCompletion - g.due(g.warmupCount)) / 1e9 : 0
    // The first measured request falls due at the window's start: n requests span n-1 intervals.
    let achieved = window > 0 ? Double(max(0, g.completedMeasured - 1)) / window : 0
    let unanswered = g.total - g.completedAll
    let c = g.corrected
    let u = g.uncorrected
    var fields: [String] = []
    fields.append("\"target_rps\": \(options.rate)")
    fields.append("\"achieved_rps\": \((achieved * 10).rounded() / 10)")
    fields.append("\"duration_s\": \(options.duration)")
    fields.append("\"warmup_s\": \(options.warmup)")
    fields.append("\"connections\": \(options.connections)")
    fields.append("\"requests\": \(measured)")
    fields.append("\"completed\": \(g.completedMeasured)")
    fields.append("\"completed_all\": \(g.completedAll)")
    fields.append("\"unanswered\": \(unanswered)")
    fields.append("\"errors\": \(g.errors)")
    fields.append("\"bad_status\": \(g.badStatus)")
    fields.append("\"reconnects\": \(g.reconnects)")
    fields.append("\"max_queue\": \(g.maxQueue)")
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
        fields.append("\"\(name)_ms\": \(ms(c.valueAtPercentile(p)))")
    }
    fields.append("\"max_ms\": \(ms(c.max))")
    fields.append("\"mean_ms\": \(ms(UInt64(c.mean)))")
    fields.append("\"uncorrected_p50_ms\": \(ms(u.valueAtPercentile(50)))")
    fields.append("\"uncorrected_p99_ms\": \(ms(u.valueAtPercentile(99)))")
    fields.append("\"uncorrected_max_ms\": \(ms(u.max))")
    fields.append("\"send_lag_p50_ms\": \(ms(g.lag.valueAtPercentile(50)))")
    fields.append("\"send_lag_p99_ms\": \(ms(g.lag.valueAtPercentile(99)))")
    var status: Int32 = 0
    var problems: [String] = []
    if g.errors > 0 || g.badStatus > 0 || unanswered > 0 {
        status = 1
        problems.append("\(g.errors) errors, \(g.badStatus) non-2xx/3xx, \(unanswered) unanswered")
    }
    if achieved < options.minRatio * options.rate {
        if status == 0 { status = 3 }
        problems.append("achieved \(Int(achieved)) req/s, under \(Int(options.minRatio * 100)) % of the target \(Int(options.rate))")
    }
    fields.append("\"ok\": \(status == 0)")
    fields.append("\"problem\": \"\(problems.joined(separator: "; "))\"")
    for problem in problems { warn("eino-loadgen: FAILED: \(problem)") }
    return "\(status)|{" + fields.joined(separator: ", ") + "}"
}.wait()

let bar = result.firstIndex(of: "|")!
print(result[result.index(after: bar)...])
fflush(nil)
try? group.syncShutdownGracefully()
exit(Int32(result[..<bar])!)
