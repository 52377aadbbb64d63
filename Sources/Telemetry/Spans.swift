/// A finished span of one proxied exchange, as the event loop records it; encoded for
/// export off the loop.
public struct SpanRecord: Sendable, Equatable {
    /// OTLP `SpanKind` numbers: the outbound proxy's span is the client side of the call,
    /// the inbound proxy's the server side.
    public enum Kind: Int, Sendable {
        case server = 2
        case client = 3
    }

    public var traceID: TraceID
    public var spanID: SpanID
    /// Nil for a trace this proxy started.
    public var parentSpanID: SpanID?
    public var kind: Kind
    public var method: String
    public var authority: String
    public var path: String
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64
    public var status: Int
    /// The service called (outbound: the root service; inbound: this proxy's) and the one
    /// that served (outbound: the backend a split chose; inbound: the app's service).
    public var service: String?
    public var backend: String?
    /// The other side's verified identity (inbound: the client; outbound: the endpoint).
    public var peerIdentity: String?

    public init(traceID: TraceID, spanID: SpanID, parentSpanID: SpanID?, kind: Kind, method: String, authority: String, path: String,
                startUnixNanos: UInt64, endUnixNanos: UInt64, status: Int, service: String?, backend: String?, peerIdentity: String?) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.kind = kind
        self.method = method
        self.authority = authority
        self.path = path
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.status = status
        self.service = service
        self.backend = backend
        self.peerIdentity = peerIdentity
    }
}

/// OTLP/HTTP JSON (`POST /v1/traces`, `ExportTraceServiceRequest`): ids as hex, 64-bit
/// integers as decimal strings, enums as numbers, as the OTLP JSON mapping says.
public enum OTLPJSON {
    public static let scopeName = "eino"

    /// One request body for `spans`, all from the proxy of `service` in `namespace`.
    public static func traces(_ spans: [SpanRecord], service: String, namespace: String) -> String {
        var out = "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
        out += attribute("service.name", service) + "," + attribute("service.namespace", namespace)
        out += "]},\"scopeSpans\":[{\"scope\":{\"name\":\"\(scopeName)\"},\"spans\":["
        for (index, span) in spans.enumerated() {
            if index > 0 { out += "," }
            out += encode(span)
        }
        out += "]}]}]}"
        return out
    }

    static func encode(_ span: SpanRecord) -> String {
        var out = "{\"traceId\":\"\(span.traceID.hex)\",\"spanId\":\"\(span.spanID.hex)\""
        if let parent = span.parentSpanID { out += ",\"parentSpanId\":\"\(parent.hex)\"" }
        out += ",\"name\":" + JSONText.string(span.method)
        out += ",\"kind\":\(span.kind.rawValue)"
        out += ",\"startTimeUnixNano\":\"\(span.startUnixNanos)\",\"endTimeUnixNano\":\"\(span.endUnixNanos)\""
        var attributes = [
            attribute("http.request.method", span.method),
            "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"\(span.status)\"}}",
            attribute("server.address", span.authority),
            attribute("url.path", span.path),
        ]
        if let service = span.service { attributes.append(attribute("eino.service", service)) }
        if let backend = span.backend { attributes.append(attribute("eino.backend", backend)) }
        if let peer = span.peerIdentity { attributes.append(attribute("eino.peer.identity", peer)) }
        out += ",\"attributes\":[" + attributes.joined(separator: ",") + "]"
        // 5xx and proxy failures are errors; anything else leaves the status unset.
        out += span.status >= 500 ? ",\"status\":{\"code\":2,\"message\":\"HTTP \(span.status)\"}}" : ",\"status\":{}}"
        return out
    }

    private static func attribute(_ key: String, _ value: String) -> String {
        "{\"key\":\(JSONText.string(key)),\"value\":{\"stringValue\":\(JSONText.string(value))}}"
    }
}
