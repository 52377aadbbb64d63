/// What a new connection speaks, judged from its first bytes.
public enum DetectedProtocol: String, Sendable, Equatable {
    case http1
    case http2
    case tls
    case opaque
}

/// Classifies a connection from the bytes the client sends first, within a byte budget.
/// Pure: the handler feeds it bytes and a timeout.
public struct ProtocolDetectionStateMachine: Sendable {
    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// The longest method token we wait for before giving up on HTTP/1.
    static let maxMethodLength = 20

    public let budget: Int
    public private(set) var decided: DetectedProtocol?

    public init(budget: Int) {
        self.budget = budget
    }

    public enum Verdict: Sendable, Equatable {
        case needMore
        case detected(DetectedProtocol)
    }

    /// Judges everything received so far (the handler keeps the bytes).
    public mutating func received<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        if let decided { return .detected(decided) }
        let verdict = Self.classify(bytes)
        if case .detected(let found) = verdict {
            decided = found
            return verdict
        }
        if bytes.count >= budget {
            decided = .opaque
            return .detected(.opaque)
        }
        return .needMore
    }

    /// No decision in time (a client that waits for the server to speak first, or a slow
    /// one): forward opaquely.
    public mutating func timedOut() -> DetectedProtocol {
        if let decided { return decided }
        decided = .opaque
        return .opaque
    }

    /// The peer closed before anything could be decided.
    public mutating func inputClosed() -> DetectedProtocol {
        timedOut()
    }

    static func classify<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        guard let first = bytes.first else { return .needMore }
        // TLS record: handshake (22), version major 3.
        if first == 0x16 {
            guard bytes.count >= 2 else { return .needMore }
            return .detected(bytes[bytes.index(after: bytes.startIndex)] == 0x03 ? .tls : .opaque)
        }
        // The h2 preface, or something still on its way to being it.
        let prefaceLength = min(bytes.count, http2Preface.count)
        if bytes.prefix(prefaceLength).elementsEqual(http2Preface.prefix(prefaceLength)) {
            return prefaceLength == http2Preface.count ? .detected(.http2) : .needMore
        }
        // HTTP/1.x: a method token (upper-case letters) then a space.
        var length = 0
        for byte in bytes {
            if byte == UInt8(ascii: " ") {
                return length > 0 ? .detected(.http1) : .detected(.opaque)
            }
            guard (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") else {
                return .detected(.opaque)
            }
            length += 1
            if length > maxMethodLength { return .detected(.opaque) }
        }
        return .needMore
    }
}
