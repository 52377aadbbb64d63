import NIOHTTP1

/// Hop-by-hop header fields (RFC 9110 §7.6.1): they describe one connection, so a proxy
/// drops them and the encoder on the other side makes its own framing. Pure, public so
/// `eino-microbench` can time it as the request path runs it.
///
/// Runs twice per exchange (request and response head), so it reads the fields in place:
/// a head without hop-by-hop fields is left after one pass, and `Connection: keep-alive`
/// (what most responses carry) costs no allocation.
public enum HopByHop {
    static let names: [String] = ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"]

    /// Removes hop-by-hop fields, including any the Connection field names, keeping
    /// `te: trailers`. `transfer-encoding: chunked` is kept only when `keepChunked` and no
    /// content-length says the length.
    public static func remove(from headers: inout HTTPHeaders, keepChunked: Bool) {
        var present: UInt8 = 0  // bit i: a names[i] field is there
        var named: [Substring] = []  // fields the Connection field names; empty costs nothing
        var teTrailers = false
        var chunked = false
        for (name, value) in headers {
            guard let index = index(of: name) else { continue }
            present |= 1 << index
            switch index {
            case 0:
                forEachToken(of: value) { token in
                    if !equalsIgnoringCase(token, "close") && !equalsIgnoringCase(token, "keep-alive") { named.append(token) }
                }
            case 3:
                forEachToken(of: value) { if equalsIgnoringCase($0, "trailers") { teTrailers = true } }
            case 4:
                forEachToken(of: value) { if equalsIgnoringCase($0, "chunked") { chunked = true } }
            default:
                break
            }
        }
        guard present != 0 else { return }
        if !named.isEmpty {
            for name in named { headers.remove(name: String(name)) }
            // A field the Connection field names is gone before its own tokens count.
            teTrailers = teTrailers && headers.contains(name: "te")
            chunked = chunked && headers.contains(name: "transfer-encoding")
        }
        for index in names.indices where present & (1 << index) != 0 { headers.remove(name: names[index]) }
        if teTrailers { headers.add(name: "te", value: "trailers") }
        if keepChunked && chunked && !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
    }

    /// The index in `names` of a hop-by-hop field name (any case), else nil. The length
    /// rules out almost every other field before a byte is compared.
    static func index(of name: String) -> Int? {
        let candidates: (Int, Int)
        switch name.utf8.count {
        case 2: candidates = (3, 3)
        case 7: candidates = (5, 5)
        case 10: candidates = (0, 1)
        case 16: candidates = (2, 2)
        case 17: candidates = (4, 4)
        case 18: candidates = (6, 6)
        case 19: candidates = (7, 7)
        default: return nil
        }
        if equalsIgnoringCase(name[...], names[candidates.0]) { return candidates.0 }
        if candidates.1 != candidates.0 && equalsIgnoringCase(name[...], names[candidates.1]) { return candidates.1 }
        return nil
    }

    /// Calls `body` with each element of a comma-separated list, spaces and tabs trimmed,
    /// empty elements skipped: the elements `HTTPHeaders[canonicalForm:]` gives, without
    /// building arrays.
    static func forEachToken(of value: String, _ body: (Substring) -> Void) {
        let utf8 = value.utf8
        var start = utf8.startIndex
        while start < utf8.endIndex {
            let comma = utf8[start...].firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            var first = start
            var end = comma
            while first < end, utf8[first] == UInt8(ascii: " ") || utf8[first] == UInt8(ascii: "\t") { first = utf8.index(after: first) }
            while end > first {
                let last = utf8.index(before: end)
                guard utf8[last] == UInt8(ascii: " ") || utf8[last] == UInt8(ascii: "\t") else { break }
                end = last
            }
            if first < end { body(value[first..<end]) }
            start = comma == utf8.endIndex ? comma : utf8.index(after: comma)
        }
    }

    /// `text` equals `lowercase` (ASCII lower case) with ASCII case ignored.
    static func equalsIgnoringCase(_ text: Substring, _ lowercase: String) -> Bool {
        text.utf8.elementsEqual(lowercase.utf8) { byte, expected in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte) == expected
        }
    }
}
