import AsyncHTTPClient
import Dispatch
import Foundation
import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Telemetry

/// Ships what the event loops buffered (spans, access-log records) from a queue of its own:
/// every interval it asks each loop for its buffer's contents, then writes or posts them
/// there. The loops only ever append to their own buffer; none waits for this.
final class LoopBufferDrain<Element: Sendable>: @unchecked Sendable {
    private let loops: [LoopContext]
    private let buffer: @Sendable (LoopContext) -> LoopBuffer<Element>?
    private let deliver: ([Element]) -> Void
    private let queue: DispatchQueue
    private let interval: TimeAmount
    private var timer: DispatchSourceTimer?
    private let droppedCount = NIOLockedValueBox<UInt64>(0)

    init(name: String, loops: [LoopContext], interval: TimeAmount,
         buffer: @escaping @Sendable (LoopContext) -> LoopBuffer<Element>?, deliver: @escaping ([Element]) -> Void) {
        self.loops = loops
        self.buffer = buffer
        self.deliver = deliver
        self.interval = interval
        queue = DispatchQueue(label: "eino.proxy.\(name)")
    }

    /// Records dropped so far because a loop's buffer was full.
    var dropped: UInt64 { droppedCount.withLockedValue { $0 } }

    func start() {
        queue.sync {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            let nanos = Int(interval.nanoseconds)
            timer.schedule(deadline: .now() + .nanoseconds(nanos), repeating: .nanoseconds(nanos))
            timer.setEventHandler { [weak self] in self?.drainNow() }
            timer.resume()
            self.timer = timer
        }
    }

    /// Stops the schedule and ships what is left. Call while the loops still run.
    func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
            drainNow()
        }
    }

    private func drainNow() {
        var items: [Element] = []
        var lost: UInt64 = 0
        let buffer = self.buffer
        for loop in loops {
            guard let (got, dropped) = try? loop.eventLoop.submit({ buffer(loop)?.drain() ?? ([], 0) }).wait() else { continue }
            items += got
            lost &+= dropped
        }
        if lost > 0 { droppedCount.withLockedValue { $0 &+= lost } }
        if !items.isEmpty { deliver(items) }
    }
}

/// The proxy's span export (`--trace-otlp`) and access log (`--access-log`), and their
/// counters for `/metrics`.
final class TelemetryShipping: @unchecked Sendable {
    private let spans: LoopBufferDrain<SpanRecord>?
    private let accessLog: LoopBufferDrain<AccessLogRecord>?
    private let exportStats = NIOLockedValueBox(ExportStats())

    private struct ExportStats {
        var exported: UInt64 = 0
        var failed: UInt64 = 0
        var failing = false
    }

    /// Spans per POST; more are sent in several.
    static let batchSize = 512

    init(configuration: ProxyConfiguration, loops: [LoopContext], identity: @escaping @Sendable () -> ServiceKey?, log: @escaping @Sendable (String) -> Void) {
        if configuration.accessLog != nil {
            accessLog = LoopBufferDrain(name: "access-log", loops: loops, interval: .milliseconds(200), buffer: { $0.telemetry.accessLog }) { records in
                var text = ""
                for record in records {
                    text += record.jsonLine
                    text += "\n"
                }
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        } else {
            accessLog = nil
        }
        if let url = configuration.traceOTLP {
            let stats = exportStats
            spans = LoopBufferDrain(name: "span-export", loops: loops, interval: .milliseconds(500), buffer: { $0.telemetry.spans }) { records in
                let key = identity() ?? ServiceKey(name: "unknown", namespace: "default")
                var start = 0
                while start < records.count {
                    let batch = Array(records[start..<min(start + Self.batchSize, records.count)])
                    start += batch.count
                    let problem = Self.post(OTLPJSON.traces(batch, service: key.name, namespace: key.namespace), to: url)
                    // One log line when export starts failing and one when it recovers.
                    let change = stats.withLockedValue { stats -> String? in
                        if let problem {
                            stats.failed &+= UInt64(batch.count)
                            defer { stats.failing = true }
                            return stats.failing ? nil : "span export to \(url) failing (spans are dropped meanwhile): \(problem)"
                        }
                        stats.exported &+= UInt64(batch.count)
                        defer { stats.failing = false }
                        return stats.failing ? "span export to \(url) works again" : nil
                    }
                    if let change { log(change) }
                }
            }
        } else {
            spans = nil
        }
    }

    /// Posts one OTLP/HTTP JSON body; the problem, or nil once the receiver took it.
    private static func post(_ body: String, to url: String) -> String? {
        do {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            let request = try HTTPClient.Request(url: url, method: .POST, headers: headers, body: .string(body))
            let response = try HTTPClient.shared.execute(request: request, deadline: .now() + .seconds(10)).wait()
            return (200..<300).contains(response.status.code) ? nil : "HTTP \(response.status.code)"
        } catch {
            return "\(error)"
        }
    }

    func start() {
        spans?.start()
        accessLog?.start()
    }

    /// Ships what is left; called after the drain, while the loops still run.
    func stop() {
        spans?.stop()
        accessLog?.stop()
    }

    /// Counters for `/metrics`, for the parts that are on.
    var counters: [MetricsSnapshot.Scalar] {
        var result: [MetricsSnapshot.Scalar] = []
        if let spans {
            let stats = exportStats.withLockedValue { $0 }
            result.append(.init("eino_trace_spans_exported_total", "Spans accepted by the OTLP receiver.", .counter, Double(stats.exported)))
            result.append(.init("eino_trace_spans_failed_total", "Spans lost because the OTLP receiver refused them or could not be reached.", .counter, Double(stats.failed)))
            result.append(.init("eino_trace_spans_dropped_total", "Spans dropped because an event loop's export buffer was full.", .counter, Double(spans.dropped)))
        }
        if let accessLog {
            result.append(.init("eino_access_log_dropped_total", "Access-log lines dropped because an event loop's buffer was full.", .counter, Double(accessLog.dropped)))
        }
        return result
    }
}
