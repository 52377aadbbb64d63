/// Compiled HTTPRouteGroup conditions.
///
/// Swift `Regex` is slow to run, and most route patterns are plain text (`/api/`,
/// `/api/.*`, `^/login$`); those are recognised when compiling and matched by comparing
/// bytes. Everything else falls back to `Regex`, so behaviour stays that of the pattern.

/// How a string is tested. Paths are matched from their start (a prefix match of the
/// pattern); header values must match whole.
public enum TextMatcher: Sendable, CustomStringConvertible {
    case any
    case equals([UInt8])
    case prefix([UInt8])
    case regex(RegexBox)

    /// Compiles `pattern`. `anchoredPrefix` gives SMI's path semantics (the pattern must match
    /// at the start, anything may follow); otherwise the whole value must match.
    public static func compile(_ pattern: String, anchoredPrefix: Bool) throws -> TextMatcher {
        if let (literal, tail) = literalHead(of: pattern) {
            switch tail {
            case .end:
                if anchoredPrefix { return literal.isEmpty ? .any : .prefix(literal) }
                return .equals(literal)
            case .dollar:
                return .equals(literal)
            case .dotStar:
                return literal.isEmpty ? .any : .prefix(literal)
            case .other:
                break
            }
        }
        return .regex(RegexBox(try Regex(pattern), pattern: pattern))
    }

    @inlinable
    public func matches(_ text: Substring, anchoredPrefix: Bool) -> Bool {
        switch self {
        case .any:
            return true
        case .equals(let bytes):
            return text.utf8.elementsEqual(bytes)
        case .prefix(let bytes):
            return text.utf8.starts(with: bytes)
        case .regex(let box):
            return box.matches(text, anchoredPrefix: anchoredPrefix)
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .equals(let bytes): "equals(\(String(decoding: bytes, as: UTF8.self)))"
        case .prefix(let bytes): "prefix(\(String(decoding: bytes, as: UTF8.self)))"
        case .regex(let box): "regex(\(box.pattern))"
        }
    }

    enum Tail { case end, dollar, dotStar, other }

    /// Splits a pattern into a literal head and what follows it, when the head can be read
    /// without a regex engine. Returns nil when the pattern uses alternation at top level
    /// (a `|` anywhere) since a literal head would then be wrong.
    static func literalHead(of pattern: String) -> ([UInt8], Tail)? {
        var bytes = Array(pattern.utf8)
        if bytes.contains(UInt8(ascii: "|")) { return nil }
        if bytes.first == UInt8(ascii: "^") { bytes.removeFirst() }
        var literal: [UInt8] = []
        var index = 0
        let meta: Set<UInt8> = Set("\\^$.|?*+()[]{}".utf8)
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { return nil }
                let next = bytes[index + 1]
                // Only escaped punctuation is a literal; `\d`, `\w`, `\s` … are classes.
                guard meta.contains(next) || next == UInt8(ascii: "/") || next == UInt8(ascii: "-") else { break }
                literal.append(next)
                index += 2
                continue
            }
            if byte >= 0x80 { return nil }  // keep non-ASCII semantics with the regex engine
            if meta.contains(byte) { break }
            literal.append(byte)
            index += 1
        }
        // A quantifier right after the literal applies to its last character.
        let rest = bytes[index...]
        if let first = rest.first, [UInt8(ascii: "?"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "{")].contains(first) {
            return (literal, .other)
        }
        if rest.isEmpty { return (literal, .end) }
        if rest.elementsEqual("$".utf8) { return (literal, .dollar) }
        if rest.elementsEqual(".*".utf8) || rest.elementsEqual(".*$".utf8) { return (literal, .dotStar) }
        return (literal, .other)
    }
}

/// A compiled `Regex`, shared read-only between event loops.
public final class RegexBox: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
    public let pattern: String

    init(_ regex: Regex<AnyRegexOutput>, pattern: String) {
        self.regex = regex
        self.pattern = pattern
    }

    public func matches(_ text: Substring, anchoredPrefix: Bool) -> Bool {
        if anchoredPrefix {
            return (try? regex.prefixMatch(in: text)) != nil
        }
        return (try? regex.wholeMatch(in: text)) != nil
    }
}

/// One HTTPRouteGroup match: every condition must hold.
public struct CompiledMatch: Sendable {
    public var name: String
    public var path: TextMatcher
    /// Upper-case methods; empty means any.
    public var methods: [String]
    public var headers: [(name: String, value: TextMatcher)]

    public init(_ match: HTTPRouteGroupMatchInput) throws {
        name = match.name
        path = try match.pathRegex.map { try TextMatcher.compile($0, anchoredPrefix: true) } ?? .any
        methods = match.methods.contains("*") ? [] : match.methods.map { $0.uppercased() }
        headers = try match.headers.map { ($0.name.lowercased(), try TextMatcher.compile($0.valueRegex, anchoredPrefix: false)) }
    }

    /// `header` returns the first value of a (lower-case) header name, or nil.
    @inlinable
    public func matches(method: String, path requestPath: Substring, header: (String) -> String?) -> Bool {
        if !methods.isEmpty && !methods.contains(method) { return false }
        if !path.matches(requestPath, anchoredPrefix: true) { return false }
        for condition in headers {
            guard let value = header(condition.name) else { return false }
            if !condition.value.matches(value[...], anchoredPrefix: false) { return false }
        }
        return true
    }
}

/// The plain inputs of a match, so callers need not import `Manifests`.
public struct HTTPRouteGroupMatchInput: Sendable {
    public var name: String
    public var pathRegex: String?
    public var methods: [String]
    public var headers: [(name: String, valueRegex: String)]

    public init(name: String, pathRegex: String?, methods: [String], headers: [(name: String, valueRegex: String)]) {
        self.name = name
        self.pathRegex = pathRegex
        self.methods = methods
        self.headers = headers
    }
}

/// The path of a request target: what comes before `?` or `#`.
@inlinable
public func requestPath(of uri: String) -> Substring {
    var end = uri.utf8.endIndex
    if let index = uri.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
        end = index
    }
    return uri[uri.startIndex..<end]
}
