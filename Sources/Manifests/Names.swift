/// Kubernetes naming rules, checked without regular expressions.
public enum Names {
    /// Why `name` cannot be a service name (a DNS-1035 label), or nil.
    public static func serviceProblem(_ name: String) -> String? {
        dns1035LabelProblem(name).map { "service \($0)" }
    }

    /// Why `name` cannot be a namespace (a DNS-1123 label), or nil.
    public static func namespaceProblem(_ name: String) -> String? {
        dns1123LabelProblem(name).map { "namespace \($0)" }
    }

    /// Why `name` is not a DNS-1123 label (namespaces), or nil when it is one.
    static func dns1123LabelProblem(_ name: String) -> String? {
        labelProblem(name, mustStartWithLetter: false)
    }

    /// Why `name` is not a DNS-1035 label (Kubernetes service names), or nil.
    static func dns1035LabelProblem(_ name: String) -> String? {
        labelProblem(name, mustStartWithLetter: true)
    }

    /// Why `name` is not a DNS-1123 subdomain (object names), or nil.
    static func dns1123SubdomainProblem(_ name: String) -> String? {
        if name.utf8.count > 253 { return "must be at most 253 characters" }
        if name.isEmpty { return "must not be empty" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false)
        where labelProblem(String(label), mustStartWithLetter: false, limit: 253) != nil {
            return "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
                + "each part starting and ending with a letter or digit (got \"\(name)\")"
        }
        return nil
    }

    private static func labelProblem(_ name: String, mustStartWithLetter: Bool, limit: Int = 63) -> String? {
        let bytes = Array(name.utf8)
        let kind = mustStartWithLetter ? "a DNS-1035 label" : "a DNS-1123 label"
        let rule = "must be \(kind): lower-case letters, digits and '-', "
            + (mustStartWithLetter ? "starting with a letter" : "starting with a letter or digit")
            + " and ending with a letter or digit"
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > limit { return "must be at most \(limit) characters" }
        func isLower(_ b: UInt8) -> Bool { b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        guard bytes.allSatisfy({ isLower($0) || isDigit($0) || $0 == UInt8(ascii: "-") }),
              isLower(bytes[0]) || (!mustStartWithLetter && isDigit(bytes[0])),
              isLower(bytes[bytes.count - 1]) || isDigit(bytes[bytes.count - 1])
        else { return "\(rule) (got \"\(name)\")" }
        return nil
    }

    /// RFC 9110 token characters: what an HTTP header name may contain.
    static func isHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(isTokenByte)
    }

    /// One RFC 9110 `tchar` (§5.6.2): a letter, a digit or one of ``!#$%&'*+-.^_`|~``.
    /// Also what the proxy checks a peer's header names with, byte by byte on the request
    /// path, hence a switch and inlinable.
    @inlinable
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x30...0x39, 0x41...0x5A, 0x5E...0x7A, 0x7C, 0x7E: true
        default: false
        }
    }

    static let httpMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
}
