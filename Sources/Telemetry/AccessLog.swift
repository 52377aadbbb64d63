/// One access-log record: what the event loop keeps per finished request. The JSON line is
/// made off the loop, by the writer.
public struct AccessLogRecord: Sendable, Equatable {
    public var unixNanos: UInt64
    public var direction: String
    public var method: String
    public var authority: String
    /// The request path without its query (queries carry tokens often enough to keep out of logs).
    public var path: String
    public var status: Int
    public var durationNanos: UInt64
    /// Body bytes read from the client and sent back to it.
    public var bytesReceived: Int
    public var bytesSent: Int
    public var service: String?
    public var backend: String?
    public var peerIdentity: String?
    public var traceID: TraceID?

    public init(unixNanos: UInt64, direction: String, method: String, authority: String, path: String, status: Int, durationNanos: UInt64,
                bytesReceived: Int, bytesSent: Int, service: String?, backend: String?, peerIdentity: String?, traceID: TraceID?) {
        self.unixNanos = unixNanos
        self.direction = direction
        self.method = method
        self.authority = authority
        self.path = path
        self.status = status
        self.durationNanos = durationNanos
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.service = service
        self.backend = backend
        self.peerIdentity = peerIdentity
        self.traceID = traceID
    }

    /// One line of JSON (no newline), fields in a fixed order; absent values are `null`.
    public var jsonLine: String {
        let micros = durationNanos / 1000
        let duration = "\(micros / 1000).\(String(repeating: "0", count: 3 - String(micros % 1000).count))\(micros % 1000)"
        var out = "{\"time\":\"\(WallClock.rfc3339(unixNanos: unixNanos))\""
        out += ",\"direction\":" + JSONText.string(direction)
        out += ",\"method\":" + JSONText.string(method)
        out += ",\"authority\":" + JSONText.string(authority)
        out += ",\"path\":" + JSONText.string(path)
        out += ",\"status\":\(status)"
        out += ",\"duration_ms\":" + duration
        out += ",\"bytes_received\":\(bytesReceived),\"bytes_sent\":\(bytesSent)"
        out += ",\"service\":" + JSONText.optionalString(service)
        out += ",\"backend\":" + JSONText.optionalString(backend)
        out += ",\"peer_identity\":" + JSONText.optionalString(peerIdentity)
        out += ",\"trace_id\":" + JSONText.optionalString(traceID?.hex)
        out += "}"
        return out
    }
}
