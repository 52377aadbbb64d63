/// The JSONPath subset `compare.ignoreJSONPaths` accepts: `$`, then `.key`, `['key']`,
/// `[index]`, `[*]` or `.*` segments — enough to name a field to leave out of a comparison.
public enum JSONPath {
    public enum Segment: Hashable, Sendable {
        case key(String)
        case index(Int)
        case wildcard
    }

    /// Why `path` is not in the accepted subset, or nil.
    static func problem(_ path: String) -> String? {
        parse(path) == nil ? "invalid JSON path \"\(path)\"; expected $ followed by .key, ['key'], [index] or [*] segments" : nil
    }

    public static func parse(_ path: String) -> [Segment]? {
        var rest = Substring(path)
        guard rest.first == "$" else { return nil }
        rest = rest.dropFirst()
        var segments: [Segment] = []
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                let key = rest.prefix { $0 != "." && $0 != "[" }
                guard !key.isEmpty else { return nil }
                segments.append(key == "*" ? .wildcard : .key(String(key)))
                rest = rest.dropFirst(key.count)
            } else if first == "[" {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                let inner = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
                if inner == "*" {
                    segments.append(.wildcard)
                } else if let index = Int(inner), index >= 0 {
                    segments.append(.index(index))
                } else if inner.count >= 2, let quote = inner.first, quote == "'" || quote == "\"", inner.last == quote {
                    segments.append(.key(String(inner.dropFirst().dropLast())))
                } else {
                    return nil
                }
            } else {
                return nil
            }
        }
        return segments
    }
}
