import Yams

/// The tag of a plain (unquoted, untagged) YAML scalar: the rules of Yams's
/// `Resolver.default` (YAML 1.1 core types), in its order, matched by hand.
///
/// Why not the resolver itself: its rules are `NSRegularExpression`s, and compiling them
/// starts ICU's regex engine and Unicode property tables, which every proxy would map and
/// keep resident for a config file of a few lines. `ManifestDecoder.yamlParser` uses
/// `Resolver.basic` (no rules) and `Node.tagName` asks this instead; `ScalarTagTests` checks
/// it against Yams's rules.
enum ScalarTag {
    static func resolve(_ text: String) -> Tag.Name {
        if bools.contains(text) { return .bool }
        let bytes = Array(text.utf8)
        if isInt(bytes[...]) { return .int }
        if isFloat(bytes[...]) { return .float }
        if text == "<<" { return .merge }
        if isNull(text) { return .null }
        if isTimestamp(bytes[...]) { return .timestamp }
        if text == "=" { return .value }
        return .str
    }

    private static let bools: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ]

    private static func isNull(_ text: String) -> Bool {
        text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// `[-+]?` followed by one of: `0b[01_]+`, `0o?[0-7_]+`, `0`, `[1-9][0-9_]*`,
    /// `0x[0-9a-fA-F_]+`, `[1-9][0-9_]*(:[0-5]?[0-9])+`.
    private static func isInt(_ all: ArraySlice<UInt8>) -> Bool {
        let bytes = droppingSign(all)
        guard let first = bytes.first else { return false }
        if first == UInt8(ascii: "0") {
            let rest = bytes.dropFirst()
            if rest.isEmpty { return true }
            switch rest.first! {
            case UInt8(ascii: "b"): return isRun(rest.dropFirst(), of: { $0 == 0x30 || $0 == 0x31 || $0 == 0x5F })
            case UInt8(ascii: "x"): return isRun(rest.dropFirst(), of: { isHexDigit($0) || $0 == 0x5F })
            case UInt8(ascii: "o"): return isRun(rest.dropFirst(), of: isOctalOrUnderscore)
            default: return isRun(rest, of: isOctalOrUnderscore)
            }
        }
        guard isDigit(first) else { return false }
        let whole = bytes.prefix(while: isDigitOrUnderscore)
        if whole.count == bytes.count { return true }
        return isSexagesimalTail(bytes[whole.endIndex...]) == bytes.endIndex
    }

    /// `[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?`, `\.[0-9_]+([eE][-+][0-9]+)?`,
    /// `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`, `[-+]?\.(inf|Inf|INF)`, `\.(nan|NaN|NAN)`.
    private static func isFloat(_ all: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: all, as: UTF8.self)
        if text == ".nan" || text == ".NaN" || text == ".NAN" { return true }
        let signed = droppingSign(all)
        let unsigned = String(decoding: signed, as: UTF8.self)
        if unsigned == ".inf" || unsigned == ".Inf" || unsigned == ".INF" { return true }
        if all.first == UInt8(ascii: ".") {
            // No sign, at least one digit or underscore, an exponent only with its sign.
            let digits = all.dropFirst().prefix(while: isDigitOrUnderscore)
            if !digits.isEmpty && isExponent(all[digits.endIndex...], signRequired: true) { return true }
        }
        guard let first = signed.first, isDigit(first) else { return false }
        let whole = signed.prefix(while: isDigitOrUnderscore)
        var rest = signed[whole.endIndex...]
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst().drop(while: isDigitOrUnderscore)
        }
        if isExponent(rest, signRequired: false) { return true }
        // Sexagesimal with a fraction: the point is required.
        let afterColons = isSexagesimalTail(signed[whole.endIndex...])
        guard let afterColons, signed[afterColons...].first == UInt8(ascii: ".") else { return false }
        return isRun(signed[(afterColons + 1)...], of: isDigitOrUnderscore, allowingEmpty: true)
    }

    /// `[0-9]{4}-[0-9]{2}-[0-9]{2}`, or `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}` then `T`, `t` or
    /// spaces/tabs, `[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?` and an optional zone
    /// `[ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?)`.
    private static func isTimestamp(_ bytes: ArraySlice<UInt8>) -> Bool {
        var scanner = Scanner(bytes)
        guard scanner.digits(4...4), scanner.skip("-"), let month = scanner.digitCount(1...2),
              scanner.skip("-"), let day = scanner.digitCount(1...2)
        else { return false }
        if scanner.atEnd { return month == 2 && day == 2 }
        if !scanner.skip("T") && !scanner.skip("t") {
            guard scanner.skipBlanks() > 0 else { return false }
        }
        guard scanner.digits(1...2), scanner.skip(":"), scanner.digits(2...2), scanner.skip(":"), scanner.digits(2...2)
        else { return false }
        if scanner.skip(".") { _ = scanner.digitCount(0...Int.max) }
        if scanner.atEnd { return true }
        _ = scanner.skipBlanks()
        if scanner.skip("Z") { return scanner.atEnd }
        guard scanner.skip("-") || scanner.skip("+"), scanner.digits(1...2) else { return false }
        if scanner.skip(":") { guard scanner.digits(2...2) else { return false } }
        return scanner.atEnd
    }

    // MARK: pieces

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    private static func isDigitOrUnderscore(_ byte: UInt8) -> Bool { isDigit(byte) || byte == 0x5F }
    private static func isOctalOrUnderscore(_ byte: UInt8) -> Bool { (byte >= 0x30 && byte <= 0x37) || byte == 0x5F }
    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }

    private static func droppingSign(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") ? bytes.dropFirst() : bytes
    }

    private static func isRun(_ bytes: ArraySlice<UInt8>, of allowed: (UInt8) -> Bool, allowingEmpty: Bool = false) -> Bool {
        (allowingEmpty || !bytes.isEmpty) && bytes.allSatisfy(allowed)
    }

    /// Empty, or `[eE]` then a sign (optional unless required) and at least one digit.
    private static func isExponent(_ bytes: ArraySlice<UInt8>, signRequired: Bool) -> Bool {
        guard let first = bytes.first else { return true }
        guard first == UInt8(ascii: "e") || first == UInt8(ascii: "E") else { return false }
        var rest = bytes.dropFirst()
        if rest.first == UInt8(ascii: "-") || rest.first == UInt8(ascii: "+") {
            rest = rest.dropFirst()
        } else if signRequired {
            return false
        }
        return isRun(rest, of: isDigit)
    }

    /// Consumes `(:[0-5]?[0-9])+` from the start of `bytes`; the index after it, or nil when
    /// there is not even one group. Each group takes as many digits as it can, as the
    /// regex's backtracking would settle on for a match that must then end or continue
    /// with `:` or `.`.
    private static func isSexagesimalTail(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        var groups = 0
        while index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") {
            let digits = bytes[(index + 1)...].prefix(while: isDigit)
            switch digits.count {
            case 1: break
            case 2 where digits.first! <= UInt8(ascii: "5"): break
            default: return nil
            }
            index = digits.endIndex
            groups += 1
        }
        return groups > 0 ? index : nil
    }

    private struct Scanner {
        var bytes: ArraySlice<UInt8>
        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { bytes.isEmpty }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard bytes.first == UInt8(ascii: character) else { return false }
            bytes = bytes.dropFirst()
            return true
        }

        mutating func skipBlanks() -> Int {
            let blanks = bytes.prefix { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            bytes = bytes[blanks.endIndex...]
            return blanks.count
        }

        /// Consumes the digits there are; their count when it is within `range`.
        mutating func digitCount(_ range: ClosedRange<Int>) -> Int? {
            let digits = bytes.prefix(while: ScalarTag.isDigit)
            guard range.contains(digits.count) else { return nil }
            bytes = bytes[digits.endIndex...]
            return digits.count
        }

        mutating func digits(_ range: ClosedRange<Int>) -> Bool { digitCount(range) != nil }
    }
}
