import MeshConfig
import NIOHTTP1
import Telemetry

/// One event loop's tracing and access-log state: the sampling rate and the bounded
/// buffers that the shippers (TelemetryShipping.swift) empty off the loop.
final class LoopTelemetry {
    /// Chance that a trace this proxy starts is sampled; 0 = start none (propagate only).
    let sampleRate: Double
    /// Finished spans waiting for export; nil without `--trace-otlp`.
    let spans: LoopBuffer<SpanRecord>?
    /// Finished requests waiting to be logged; nil without `--access-log`.
    let accessLog: LoopBuffer<AccessLogRecord>?
    /// Whether an exchange needs its method, authority, path and times kept.
    let records: Bool

    static let spanCapacity = 4096
    static let accessLogCapacity = 16384

    init(configuration: ProxyConfiguration) {
        sampleRate = configuration.traceSampleRate
        spans = configuration.traceOTLP == nil ? nil : LoopBuffer(capacity: Self.spanCapacity)
        accessLog = configuration.accessLog == nil ? nil : LoopBuffer(capacity: Self.accessLogCapacity)
        records = spans != nil || accessLog != nil
    }
}

/// The tracing and access-log side of one exchange, driven by a few calls from
/// `HTTPProxyHandler`. With tracing and logging off it does nothing but test two flags.
///
/// Each hop behaves as a tracer would (docs/telemetry.md): a sampled context is given a new
/// span of this proxy's (client span outbound, server span inbound) when spans are exported,
/// and the header sent on names that span as the parent; otherwise the context passes
/// unchanged, so no one is pointed at a span nobody reports. The outbound proxy starts a
/// trace for a request without one when `--trace-sample-rate` is above 0.
struct ExchangeTelemetry {
    private var active = false
    private var startUnixNanos: UInt64 = 0
    private var method = ""
    private var authority = ""
    private var path = ""
    private var traceID: TraceID?
    /// This hop's span and its parent, when it records one.
    private var span: (id: SpanID, parent: SpanID?)?
    /// Body bytes read from the client and written back to it.
    var requestBytes = 0
    var responseBytes = 0

    /// Called with the request head before it goes on: reads or starts the trace context
    /// and rewrites its headers when this hop adds a span.
    mutating func begin(_ head: inout HTTPRequestHead, direction: TrafficDirection, loop: LoopContext) {
        let settings = loop.telemetry
        guard settings.records || (direction == .outbound && settings.sampleRate > 0) else { return }
        active = true
        traceID = nil
        span = nil
        requestBytes = 0
        responseBytes = 0
        if settings.records {
            startUnixNanos = WallClock.nowNanos()
            method = head.method.rawValue
            authority = head.headers.first(name: "host") ?? ""
            path = String(requestPath(of: head.uri))
        }
        switch TraceHeaders.extract(head.headers) {
        case .context(let incoming)?:
            traceID = incoming.traceID
            if settings.spans != nil && incoming.sampling.isSampled {
                let id = Self.newSpanID(loop)
                TraceHeaders.inject(incoming, span: id, parent: incoming.spanID, into: &head.headers)
                span = (id, incoming.spanID)
            }
        case .decision(let decision)?:
            start(&head.headers, decision: decision, format: .b3Single, direction: direction, loop: loop)
        case nil:
            start(&head.headers, decision: .deferred, format: .w3c, direction: direction, loop: loop)
        }
    }

    /// Starts a trace (outbound only, when sampling is on), honouring a decision the
    /// request already carried.
    private mutating func start(_ headers: inout HTTPHeaders, decision: SamplingDecision, format: TraceFormat, direction: TrafficDirection, loop: LoopContext) {
        let rate = loop.telemetry.sampleRate
        guard direction == .outbound, rate > 0 else { return }
        var sampling = decision
        if sampling == .deferred {
            sampling = rate >= 1 || Double(loop.random.next() >> 11) * 0x1p-53 < rate ? .sampled : .notSampled
        }
        var id = TraceID(high: loop.random.next(), low: loop.random.next())
        while !id.isValid { id.low = loop.random.next() }
        let spanID = Self.newSpanID(loop)
        let context = TraceContext(traceID: id, spanID: spanID, sampling: sampling, format: format)
        TraceHeaders.removeAll(from: &headers)
        TraceHeaders.inject(context, span: spanID, parent: nil, into: &headers)
        traceID = id
        if loop.telemetry.spans != nil && sampling.isSampled { span = (spanID, nil) }
    }

    private static func newSpanID(_ loop: LoopContext) -> SpanID {
        var value = loop.random.next()
        while value == 0 { value = loop.random.next() }
        return SpanID(value)
    }

    /// Called once the exchange has its final status: hands the span and the log record
    /// to the loop's buffers. Later calls for the same exchange do nothing.
    mutating func finish(status: Int, service: String?, backend: String?, peerIdentity: @autoclosure () -> String?,
                         direction: TrafficDirection, loop: LoopContext) {
        guard active else { return }
        active = false
        let settings = loop.telemetry
        guard settings.records else { return }
        let end = WallClock.nowNanos()
        let peer = peerIdentity()
        if let span, let spans = settings.spans {
            spans.append(SpanRecord(
                traceID: traceID!, spanID: span.id, parentSpanID: span.parent, kind: direction == .outbound ? .client : .server,
                method: method, authority: authority, path: path, startUnixNanos: startUnixNanos, endUnixNanos: end,
                status: status, service: service, backend: backend, peerIdentity: peer))
        }
        if let accessLog = settings.accessLog {
            accessLog.append(AccessLogRecord(
                unixNanos: startUnixNanos, direction: direction.rawValue, method: method, authority: authority, path: path,
                status: status, durationNanos: end > startUnixNanos ? end - startUnixNanos : 0,
                bytesReceived: requestBytes, bytesSent: responseBytes, service: service, backend: backend,
                peerIdentity: peer, traceID: traceID))
        }
    }
}

/// Trace-context headers on an HTTP request: which one counts, and writing one back.
enum TraceHeaders {
    /// A valid `traceparent` wins, then `b3`, then `X-B3-*`; failing a context, a bare
    /// sampling decision from B3.
    static func extract(_ headers: HTTPHeaders) -> TraceContext.B3Header? {
        if let value = headers.first(name: "traceparent"), let context = TraceContext.parse(traceparent: value) {
            return .context(context)
        }
        let single = headers.first(name: "b3").flatMap { TraceContext.parse(b3: $0) }
        if case .context = single { return single }
        let multi = TraceContext.parse(
            b3TraceID: headers.first(name: "x-b3-traceid"), spanID: headers.first(name: "x-b3-spanid"),
            parentSpanID: headers.first(name: "x-b3-parentspanid"), sampled: headers.first(name: "x-b3-sampled"),
            flags: headers.first(name: "x-b3-flags"))
        if case .context = multi { return multi }
        return single ?? multi
    }

    /// Writes `context` in its own format with `span` as the sender's span.
    static func inject(_ context: TraceContext, span: SpanID, parent: SpanID?, into headers: inout HTTPHeaders) {
        switch context.format {
        case .w3c:
            headers.replaceOrAdd(name: "traceparent", value: context.traceparent(span: span))
        case .b3Single:
            headers.replaceOrAdd(name: "b3", value: context.b3(span: span, parent: parent))
        case .b3Multi:
            headers.replaceOrAdd(name: "x-b3-spanid", value: span.hex)
            if let parent {
                headers.replaceOrAdd(name: "x-b3-parentspanid", value: parent.hex)
            } else {
                headers.remove(name: "x-b3-parentspanid")
            }
        }
    }

    /// Trace headers of a context not taken (invalid, or a bare decision), cleared before a
    /// new trace starts.
    static func removeAll(from headers: inout HTTPHeaders) {
        for name in ["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"]
        where headers.contains(name: name) {
            headers.remove(name: name)
        }
    }
}
