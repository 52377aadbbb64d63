/// A workload identity in Eino's shape, `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME`.
///
/// Eino names workloads the way Kubernetes does (a namespace and a service account), so the
/// only paths it issues or accepts are `/ns/…/sa/…`. Anything else is rejected rather than
/// carried around: an identity the mesh cannot map back to a service cannot be authorized.
public struct SPIFFEID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The trust domain, e.g. `cluster.local`: which CA family vouches for this identity.
    public let trustDomain: String
    /// The Kubernetes-style namespace (a DNS-1123 label).
    public let namespace: String
    /// The service account, which Eino equates with the service name (a DNS-1123 subdomain).
    public let serviceAccount: String

    /// Builds an identity from its parts, validating each the same way `init(parsing:)` does.
    public init(trustDomain: String, namespace: String, serviceAccount: String) throws {
        if let problem = SPIFFEID.trustDomainProblem(trustDomain) {
            throw SPIFFEIDError(input: "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)", reason: problem)
        }
        if let problem = SPIFFEID.namespaceProblem(namespace) ?? SPIFFEID.serviceAccountProblem(serviceAccount) {
            throw SPIFFEIDError(input: "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)", reason: problem)
        }
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// Parses the URI form. The check is strict on purpose (no case folding, no percent
    /// decoding, no trailing slash, no query or fragment): the string is compared byte for
    /// byte by peers, so two spellings of one identity must not exist.
    public init(parsing text: String) throws {
        func fail(_ reason: String) -> SPIFFEIDError { SPIFFEIDError(input: text, reason: reason) }
        let scheme = "spiffe://"
        guard text.hasPrefix(scheme) else { throw fail("must start with spiffe://") }
        let rest = text.dropFirst(scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let trustDomain = String(rest[..<slash])
        if let problem = SPIFFEID.trustDomainProblem(trustDomain) { throw fail(problem) }
        let path = rest[slash...]
        if path.isEmpty { throw fail("has no path; Eino identities are /ns/NAMESPACE/sa/NAME") }
        if path.contains(where: { $0 == "?" || $0 == "#" }) { throw fail("must not have a query or fragment") }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 4, segments[0] == "ns", segments[2] == "sa" else {
            throw fail("path must be /ns/NAMESPACE/sa/NAME, got \"\(path)\"")
        }
        if let problem = SPIFFEID.namespaceProblem(String(segments[1])) { throw fail(problem) }
        if let problem = SPIFFEID.serviceAccountProblem(String(segments[3])) { throw fail(problem) }
        self.trustDomain = trustDomain
        self.namespace = String(segments[1])
        self.serviceAccount = String(segments[3])
    }

    /// The URI form, as it appears in the certificate's URI SAN.
    public var description: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }

    public static func < (lhs: SPIFFEID, rhs: SPIFFEID) -> Bool { lhs.description < rhs.description }

    /// Why `trustDomain` is not a valid SPIFFE trust domain, or nil. The SPIFFE spec allows
    /// lower-case letters, digits, `.`, `-` and `_`, at most 255 characters; no port, no user.
    public static func trustDomainProblem(_ trustDomain: String) -> String? {
        if trustDomain.isEmpty { return "trust domain must not be empty" }
        if trustDomain.utf8.count > 255 { return "trust domain must be at most 255 characters" }
        let allowed = trustDomain.utf8.allSatisfy { byte in
            isLowerOrDigit(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
        if !allowed {
            return "trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got \"\(trustDomain)\")"
        }
        return nil
    }

    static func namespaceProblem(_ namespace: String) -> String? {
        labelProblem(namespace, limit: 63).map { "namespace \($0) (got \"\(namespace)\")" }
    }

    static func serviceAccountProblem(_ name: String) -> String? {
        let bad = "name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit (got \"\(name)\")"
        if name.isEmpty { return "name must not be empty" }
        if name.utf8.count > 253 { return "name must be at most 253 characters" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false)
        where labelProblem(String(label), limit: 253) != nil {
            return bad
        }
        return nil
    }

    private static func labelProblem(_ label: String, limit: Int) -> String? {
        let bytes = Array(label.utf8)
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > limit { return "must be at most \(limit) characters" }
        guard bytes.allSatisfy({ isLowerOrDigit($0) || $0 == UInt8(ascii: "-") }),
              isLowerOrDigit(bytes[0]), isLowerOrDigit(bytes[bytes.count - 1])
        else {
            return "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
        }
        return nil
    }

    private static func isLowerOrDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// A string that is not an Eino SPIFFE ID, with the reason in words a user can act on.
public struct SPIFFEIDError: Error, Equatable, CustomStringConvertible {
    public let input: String
    public let reason: String

    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }
    public var description: String { "invalid SPIFFE ID \"\(input)\": \(reason)" }
}
