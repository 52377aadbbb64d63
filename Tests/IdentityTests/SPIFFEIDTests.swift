import Identity
import Testing

/// The SPIFFE ID grammar Eino accepts, and the exact reason for every refusal.
@Suite struct SPIFFEIDTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let text: String
        let trustDomain: String, namespace: String, name: String
        var testDescription: String { text }
    }

    static let valid: [Valid] = [
        Valid(text: "spiffe://cluster.local/ns/default/sa/web", trustDomain: "cluster.local", namespace: "default", name: "web"),
        Valid(text: "spiffe://example.org/ns/prod-1/sa/api.v2", trustDomain: "example.org", namespace: "prod-1", name: "api.v2"),
        Valid(text: "spiffe://td_with-chars.9/ns/0/sa/a", trustDomain: "td_with-chars.9", namespace: "0", name: "a"),
    ]

    @Test(arguments: valid)
    func parsesAndFormats(_ case_: Valid) throws {
        let id = try SPIFFEID(parsing: case_.text)
        #expect(id.trustDomain == case_.trustDomain)
        #expect(id.namespace == case_.namespace)
        #expect(id.serviceAccount == case_.name)
        #expect(id.description == case_.text)
        #expect(try SPIFFEID(trustDomain: case_.trustDomain, namespace: case_.namespace, serviceAccount: case_.name) == id)
    }

    static let invalid: [(String, String)] = [
        ("http://cluster.local/ns/default/sa/web", "must start with spiffe://"),
        ("SPIFFE://cluster.local/ns/default/sa/web", "must start with spiffe://"),
        ("spiffe:///ns/default/sa/web", "trust domain must not be empty"),
        ("spiffe://Cluster.local/ns/default/sa/web",
         "trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got \"Cluster.local\")"),
        ("spiffe://cluster.local:8443/ns/default/sa/web",
         "trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got \"cluster.local:8443\")"),
        ("spiffe://user@cluster.local/ns/default/sa/web",
         "trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got \"user@cluster.local\")"),
        ("spiffe://cluster.local", "has no path; Eino identities are /ns/NAMESPACE/sa/NAME"),
        ("spiffe://cluster.local/", "path must be /ns/NAMESPACE/sa/NAME, got \"/\""),
        ("spiffe://cluster.local/ns/default/sa/web/", "path must be /ns/NAMESPACE/sa/NAME, got \"/ns/default/sa/web/\""),
        ("spiffe://cluster.local/ns/default/web", "path must be /ns/NAMESPACE/sa/NAME, got \"/ns/default/web\""),
        ("spiffe://cluster.local/sa/web/ns/default", "path must be /ns/NAMESPACE/sa/NAME, got \"/sa/web/ns/default\""),
        ("spiffe://cluster.local/ns//sa/web", "namespace must not be empty (got \"\")"),
        ("spiffe://cluster.local/ns/Default/sa/web",
         "namespace must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit (got \"Default\")"),
        ("spiffe://cluster.local/ns/default/sa/",  "name must not be empty"),
        ("spiffe://cluster.local/ns/default/sa/web..v1",
         "name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit (got \"web..v1\")"),
        ("spiffe://cluster.local/ns/default/sa/w%65b",
         "name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit (got \"w%65b\")"),
        ("spiffe://cluster.local/ns/default/sa/web?x=1", "must not have a query or fragment"),
        ("spiffe://cluster.local/ns/default/sa/web#frag", "must not have a query or fragment"),
        ("spiffe://cluster.local/ns/" + String(repeating: "n", count: 64) + "/sa/web", "namespace must be at most 63 characters (got \"" + String(repeating: "n", count: 64) + "\")"),
    ]

    @Test(arguments: invalid)
    func rejects(_ text: String, reason: String) {
        #expect(throws: SPIFFEIDError(input: text, reason: reason)) { try SPIFFEID(parsing: text) }
    }

    @Test func errorNamesInputAndReason() {
        let error = SPIFFEIDError(input: "spiffe://x", reason: "has no path; Eino identities are /ns/NAMESPACE/sa/NAME")
        #expect(error.description == "invalid SPIFFE ID \"spiffe://x\": has no path; Eino identities are /ns/NAMESPACE/sa/NAME")
    }
}
