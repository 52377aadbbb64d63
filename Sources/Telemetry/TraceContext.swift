/// Trace context as requests carry it: W3C Trace Context (`traceparent`, `tracestate`) and
/// B3 (the single `b3` header and the multi-header `X-B3-*` form). Parsing and formatting
/// only; what a proxy hop does with a context is decided in the proxy (docs/telemetry.md).

/// A 128-bit trace id. A 64-bit B3 trace id is held with `high == 0`.
public struct TraceID: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// All zeros is not a trace id (W3C and B3 alike).
    public var isValid: Bool { high != 0 || low != 0 }

    /// 32 lower-case hex digits.
    public var hex: String { hex16(high) + hex16(low) }
}

/// A 64-bit span id; zero is invalid.
public struct SpanID: Hashable, Sendable {
    public var value: UInt64

    public init(_ value: UInt64) {
        self.value = value
    }

    /// 16 lower-case hex digits.
    public var hex: String { hex16(value) }
}

/// The header form a context arrived in, and is written back in.
public enum TraceFormat: Sendable, Equatable {
    case w3c
    case b3Single
    case b3Multi
}

/// A sampling decision: B3 may carry none (the receiver decides), W3C always carries one.
public enum SamplingDecision: Sendable, Equatable {
    case sampled
    case notSampled
    case deferred
    /// B3 debug (`d`, `X-B3-Flags: 1`): sampled, and asks tracers to keep it.
    case debug

    public var isSampled: Bool { self == .sampled || self == .debug }
}

/// One request's trace context: the trace it belongs to and the span of whoever sent it.
public struct TraceContext: Sendable, Equatable {
    public var traceID: TraceID
    /// The sender's span: the parent of any span made for this request.
    public var spanID: SpanID
    public var sampling: SamplingDecision
    /// W3C `trace-flags` as received (version 00), kept so flags this code does not know
    /// (Level 2's `random`) pass through when the header is rewritten.
    public var flags: UInt8
    public var format: TraceFormat
    /// A B3 trace id sent as 16 hex digits is written back as 16.
    public var shortTraceID: Bool

    public init(traceID: TraceID, spanID: SpanID, sampling: SamplingDecision, format: TraceFormat, flags: UInt8? = nil, shortTraceID: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampling = sampling
        self.format = format
        self.flags = flags ?? (sampling.isSampled ? 1 : 0)
        self.shortTraceID = shortTraceID
    }

    // MARK: W3C traceparent

    /// Parses a `traceparent` value as W3C Trace Context says: version 00 is exactly
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; a higher version is read for
    /// those four fields and may carry more after a `-`; version `ff`, upper-case hex and
    /// all-zero ids are invalid.
    public static func parse(traceparent value: String) -> TraceContext? {
        var value = value
        return value.withUTF8 { bytes -> TraceContext? in
            guard bytes.count >= 55,
                  let version = parseHex(bytes, 0, 2), version != 0xff,
                  bytes[2] == dash, bytes[35] == dash, bytes[52] == dash
            else { return nil }
            if version == 0 && bytes.count != 55 { return nil }
            if version != 0 && bytes.count > 55 && bytes[55] != dash { return nil }
            guard let high = parseHex(bytes, 3, 16), let low = parseHex(bytes, 19, 16),
                  let parent = parseHex(bytes, 36, 16), parent != 0,
                  let flags = parseHex(bytes, 53, 2)
            else { return nil }
            let traceID = TraceID(high: high, low: low)
            guard traceID.isValid else { return nil }
            // Only the sampled bit is known across versions; a higher version's other bits
            // are not passed on in a version-00 header.
            let known = version == 0 ? UInt8(flags) : UInt8(flags) & 1
            return TraceContext(traceID: traceID, spanID: SpanID(parent), sampling: flags & 1 == 1 ? .sampled : .notSampled,
                                format: .w3c, flags: known)
        }
    }

    /// The version-00 `traceparent` naming `span` as the parent.
    public func traceparent(span: SpanID) -> String {
        "00-\(traceID.hex)-\(span.hex)-\(hex2(sampling.isSampled ? flags | 1 : flags & ~1))"
    }

    // MARK: B3

    /// What a single `b3` header holds: a context, or only a sampling decision (`0`, `1`, `d`).
    public enum B3Header: Sendable, Equatable {
        case context(TraceContext)
        case decision(SamplingDecision)
    }

    /// Parses `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]` or `b3: {SamplingState}`.
    /// Ids are lower-case hex: trace 16 or 32 digits, span 16; all-zero ids are invalid.
    public static func parse(b3 value: String) -> B3Header? {
        let fields = value.split(separator: "-", omittingEmptySubsequences: false)
        if fields.count == 1 {
            return b3Sampling(fields[0]).map { .decision($0) }
        }
        guard fields.count <= 4, let ids = b3IDs(trace: fields[0], span: fields[1]) else { return nil }
        var sampling = SamplingDecision.deferred
        if fields.count >= 3 {
            guard let decided = b3Sampling(fields[2]) else { return nil }
            sampling = decided
        }
        if fields.count == 4 {
            guard fields[3].utf8.count == 16, let parent = parseHex(fields[3]), parent != 0 else { return nil }
        }
        return .context(TraceContext(traceID: ids.trace, spanID: ids.span, sampling: sampling, format: .b3Single, shortTraceID: ids.short))
    }

    /// Parses the multi-header form. Both ids or neither (then only the decision counts);
    /// `X-B3-Sampled` is `1`/`0` (or the legacy `true`/`false`), `X-B3-Flags: 1` is debug.
    public static func parse(b3TraceID: String?, spanID: String?, parentSpanID: String?, sampled: String?, flags: String?) -> B3Header? {
        var sampling = SamplingDecision.deferred
        if let sampled {
            switch sampled {
            case "1", "true": sampling = .sampled
            case "0", "false": sampling = .notSampled
            default: return nil
            }
        }
        if let flags {
            guard flags == "1" || flags == "0" else { return nil }
            if flags == "1" { sampling = .debug }
        }
        guard let b3TraceID, let spanID else {
            if b3TraceID != nil || spanID != nil || (sampled == nil && flags == nil) { return nil }
            return .decision(sampling)
        }
        guard let ids = b3IDs(trace: Substring(b3TraceID), span: Substring(spanID)) else { return nil }
        if let parentSpanID {
            guard parentSpanID.utf8.count == 16, let parent = parseHex(Substring(parentSpanID)), parent != 0 else { return nil }
        }
        return .context(TraceContext(traceID: ids.trace, spanID: ids.span, sampling: sampling, format: .b3Multi, shortTraceID: ids.short))
    }

    /// The B3 trace id as it is written: 16 or 32 hex digits, as it arrived.
    public var b3TraceID: String { shortTraceID ? hex16(traceID.low) : traceID.hex }

    /// The B3 sampling state field, nil when deferred.
    public var b3Sampled: String? {
        switch sampling {
        case .sampled: "1"
        case .notSampled: "0"
        case .debug: "d"
        case .deferred: nil
        }
    }

    /// The single `b3` value naming `span` as the sender's span and `parent` as its parent
    /// (written only with a sampling state, as B3 requires).
    public func b3(span: SpanID, parent: SpanID?) -> String {
        var value = b3TraceID + "-" + span.hex
        if let sampled = b3Sampled {
            value += "-" + sampled
            if let parent { value += "-" + parent.hex }
        }
        return value
    }

    private static func b3IDs(trace: Substring, span: Substring) -> (trace: TraceID, span: SpanID, short: Bool)? {
        let traceLength = trace.utf8.count
        guard traceLength == 16 || traceLength == 32, span.utf8.count == 16 else { return nil }
        let short = traceLength == 16
        guard let low = parseHex(trace.suffix(16)),
              let high = short ? 0 : parseHex(trace.prefix(16)),
              let spanValue = parseHex(span), spanValue != 0
        else { return nil }
        let traceID = TraceID(high: high, low: low)
        guard traceID.isValid else { return nil }
        return (traceID, SpanID(spanValue), short)
    }

    private static func b3Sampling(_ field: Substring) -> SamplingDecision? {
        switch field {
        case "1": .sampled
        case "0": .notSampled
        case "d": .debug
        default: nil
        }
    }
}

// MARK: hex

private let dash = UInt8(ascii: "-")

/// Lower-case hex digits only: W3C forbids upper case, and B3 writes lower case.
@inline(__always)
private func hexValue(_ byte: UInt8) -> UInt64? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt64(byte - UInt8(ascii: "a") + 10)
    default: nil
    }
}

private func parseHex(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> UInt64? {
    var value: UInt64 = 0
    for index in start..<(start + count) {
        guard let digit = hexValue(bytes[index]) else { return nil }
        value = value << 4 | digit
    }
    return value
}

/// Up to 16 hex digits.
private func parseHex(_ text: Substring) -> UInt64? {
    guard !text.isEmpty, text.utf8.count <= 16 else { return nil }
    var value: UInt64 = 0
    for byte in text.utf8 {
        guard let digit = hexValue(byte) else { return nil }
        value = value << 4 | digit
    }
    return value
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

func hex16(_ value: UInt64) -> String {
    String(unsafeUninitializedCapacity: 16) { buffer in
        for index in 0..<16 {
            buffer[index] = hexDigits[Int((value >> UInt64(60 - 4 * index)) & 0xf)]
        }
        return 16
    }
}

func hex2(_ value: UInt8) -> String {
    String(unsafeUninitializedCapacity: 2) { buffer in
        buffer[0] = hexDigits[Int(value >> 4)]
        buffer[1] = hexDigits[Int(value & 0xf)]
        return 2
    }
}
