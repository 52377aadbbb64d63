import Foundation
import Manifests
import MeshConfig

/// A response as kept for comparison: at most `maxBodyBytes` of its body.
struct CapturedResponse: Sendable {
    var status: Int
    /// Lower-case names, in arrival order.
    var headers: [(name: String, value: String)]
    var body: [UInt8] = []
    /// The body was longer than the cap: it is not compared.
    var truncated = false

    init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    mutating func append(_ bytes: some Sequence<UInt8>, cap: Int) {
        guard !truncated else { return }
        body.append(contentsOf: bytes)
        if body.count > cap {
            truncated = true
            body = []
        }
    }
}

/// How a shadow's response differs from the primary's. Each part is checked on its own, so
/// one request can count as a status, a header and a body mismatch at once.
struct ResponseDifference: Equatable, Sendable {
    var status = false
    var headers = false
    var body = false
    /// The first difference found, for the report's samples.
    var first: String?

    var any: Bool { status || headers || body }
}

/// Compares a primary and a shadow response the way `compare` asks.
enum ResponseComparator {
    /// Headers that differ between any two responses (hop-by-hop, framing, clocks), never
    /// compared. Framing follows the body, which is compared itself.
    static let alwaysIgnored: Set<String> = [
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "date", "expires", "last-modified", "age",
    ]

    static func compare(primary: CapturedResponse, shadow: CapturedResponse, rules: MirrorComparison) -> ResponseDifference {
        var difference = ResponseDifference()
        func note(_ text: String) { if difference.first == nil { difference.first = text } }

        if primary.status != shadow.status {
            difference.status = true
            note("status \(primary.status) != \(shadow.status)")
        }

        let primaryHeaders = comparable(primary.headers, rules: rules)
        let shadowHeaders = comparable(shadow.headers, rules: rules)
        if primaryHeaders != shadowHeaders {
            difference.headers = true
            for name in Set(primaryHeaders.keys).union(shadowHeaders.keys).sorted() where primaryHeaders[name] != shadowHeaders[name] {
                note("header \(name): \(quoted(primaryHeaders[name])) != \(quoted(shadowHeaders[name]))")
                break
            }
        }

        // A body over the cap on either side is not compared: too large to keep.
        if !primary.truncated && !shadow.truncated, let bodyDifference = compareBodies(primary, shadow, rules: rules) {
            difference.body = true
            note(bodyDifference)
        }
        return difference
    }

    /// Header values by lower-case name (repeated fields joined), minus the ignored ones.
    static func comparable(_ headers: [(name: String, value: String)], rules: MirrorComparison) -> [String: String] {
        var result: [String: String] = [:]
        for (name, value) in headers where !alwaysIgnored.contains(name) && !rules.ignoreHeaders.contains(name) && !name.hasPrefix("eino-") {
            if let existing = result[name] { result[name] = existing + ", " + value } else { result[name] = value }
        }
        return result
    }

    /// nil when the bodies are equal: byte for byte, or as JSON values when both are JSON.
    static func compareBodies(_ primary: CapturedResponse, _ shadow: CapturedResponse, rules: MirrorComparison) -> String? {
        if isJSON(primary.headers), isJSON(shadow.headers),
           let left = JSONValue.parse(primary.body), let right = JSONValue.parse(shadow.body) {
            let prunedLeft = left.removing(rules.ignoreJSONPaths)
            let prunedRight = right.removing(rules.ignoreJSONPaths)
            return prunedLeft.firstDifference(from: prunedRight, at: "$")
        }
        if primary.body == shadow.body { return nil }
        let offset = zip(primary.body, shadow.body).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(primary.body.count, shadow.body.count)
        return "body differs at byte \(offset) (\(primary.body.count) vs \(shadow.body.count) bytes)"
    }

    static func isJSON(_ headers: [(name: String, value: String)]) -> Bool {
        guard let type = headers.first(where: { $0.name == "content-type" })?.value.lowercased() else { return false }
        let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return media == "application/json" || media.hasSuffix("+json")
    }

    private static func quoted(_ value: String?) -> String {
        value.map { "\"\($0)\"" } ?? "(absent)"
    }
}

/// A JSON document as a value: object key order does not matter, numbers compare by value.
indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// The value with every location a path names taken out.
    func removing(_ paths: [[JSONPath.Segment]]) -> JSONValue {
        paths.reduce(self) { $0.removing($1[...]) }
    }

    private func removing(_ path: ArraySlice<JSONPath.Segment>) -> JSONValue {
        guard let segment = path.first else { return self }
        let rest = path.dropFirst()
        switch (self, segment) {
        case (.object(var values), .key(let key)):
            if rest.isEmpty { values[key] = nil } else if let inner = values[key] { values[key] = inner.removing(rest) }
            return .object(values)
        case (.object(let values), .wildcard):
            return rest.isEmpty ? .object([:]) : .object(values.mapValues { $0.removing(rest) })
        case (.array(var values), .index(let index)):
            guard values.indices.contains(index) else { return self }
            // Removing an element would shift the others; a null keeps positions comparable.
            values[index] = rest.isEmpty ? .null : values[index].removing(rest)
            return .array(values)
        case (.array(let values), .wildcard):
            return rest.isEmpty ? .array([]) : .array(values.map { $0.removing(rest) })
        default:
            return self
        }
    }

    /// Where two values first differ (`$.items[2].price: 10 != 12`), or nil when equal.
    func firstDifference(from other: JSONValue, at path: String) -> String? {
        switch (self, other) {
        case (.object(let left), .object(let right)):
            for key in Set(left.keys).union(right.keys).sorted() {
                let inner = path + "." + key
                guard let l = left[key], let r = right[key] else {
                    return "\(inner): \(left[key]?.summary ?? "(absent)") != \(right[key]?.summary ?? "(absent)")"
                }
                if let found = l.firstDifference(from: r, at: inner) { return found }
            }
            return nil
        case (.array(let left), .array(let right)):
            for index in 0..<max(left.count, right.count) {
                let inner = "\(path)[\(index)]"
                guard index < left.count, index < right.count else {
                    return "\(inner): \(index < left.count ? left[index].summary : "(absent)") != \(index < right.count ? right[index].summary : "(absent)")"
                }
                if let found = left[index].firstDifference(from: right[index], at: inner) { return found }
            }
            return nil
        default:
            return self == other ? nil : "\(path): \(summary) != \(other.summary)"
        }
    }

    /// A short rendering for difference texts.
    var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .string(let value): return value.count > 40 ? "\"\(value.prefix(40))…\"" : "\"\(value)\""
        case .array(let values): return "[\(values.count) items]"
        case .object(let values): return "{\(values.count) keys}"
        }
    }
}

extension JSONValue: Decodable {
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
