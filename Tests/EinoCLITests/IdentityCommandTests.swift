import EinoTestSupport
import Foundation
import Testing

/// `eino identity init/issue` as operators run them, checked with the real openssl.
@Suite struct IdentityCommandTests {
    let openssl = URL(fileURLWithPath: "/usr/bin/openssl")

    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("eino-identity-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func initThenIssueGivesCertificatesOpenSSLAccepts() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = root + "/ca", out = root + "/certs"

        let initialized = try EinoProcess.eino(["identity", "init", "--dir", ca])
        #expect(initialized.status == 0, "\(initialized.stderr)")
        #expect(initialized.stderr == "")
        #expect(initialized.stdoutLines.count == 3)
        #expect(initialized.stdoutLines.first?.hasPrefix("created root CA for trust domain cluster.local, valid until ") == true)
        #expect(Array(initialized.stdoutLines.dropFirst()) == [
            "  \(ca)/ca.pem  trust anchor: give it to every proxy",
            "  \(ca)/ca.key  CA private key, mode 0600: keep it here",
        ])

        let issued = try EinoProcess.eino(["identity", "issue", "--dir", ca, "--service", "web", "--out", out])
        #expect(issued.status == 0, "\(issued.stderr)")
        #expect(issued.stderr == "")
        #expect(issued.stdoutLines.first?.hasPrefix("issued spiffe://cluster.local/ns/default/sa/web, valid until ") == true)
        #expect(Array(issued.stdoutLines.dropFirst()) == [
            "  \(out)/web.pem  certificate",
            "  \(out)/web.key  private key, mode 0600",
        ])

        let verified = try EinoProcess.run(openssl, ["verify", "-CAfile", ca + "/ca.pem", out + "/web.pem"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdoutLines == ["\(out)/web.pem: OK"])

        let san = try EinoProcess.run(openssl, ["x509", "-noout", "-ext", "subjectAltName", "-in", out + "/web.pem"])
        #expect(san.status == 0, "\(san.stderr)")
        #expect(san.stdoutLines == [
            "X509v3 Subject Alternative Name: critical",
            "    URI:spiffe://cluster.local/ns/default/sa/web",
        ])

        let usage = try EinoProcess.run(openssl, [
            "x509", "-noout", "-ext", "basicConstraints,keyUsage,extendedKeyUsage", "-in", out + "/web.pem",
        ])
        #expect(usage.stdoutLines == [
            "X509v3 Basic Constraints: critical",
            "    CA:FALSE",
            "X509v3 Key Usage: critical",
            "    Digital Signature",
            "X509v3 Extended Key Usage: ",
            "    TLS Web Server Authentication, TLS Web Client Authentication",
        ])

        // The key really belongs to the certificate: openssl derives the same public key.
        let fromCertificate = try EinoProcess.run(openssl, ["x509", "-noout", "-pubkey", "-in", out + "/web.pem"])
        let fromKey = try EinoProcess.run(openssl, ["pkey", "-pubout", "-in", out + "/web.key"])
        #expect(fromKey.status == 0, "\(fromKey.stderr)")
        #expect(fromCertificate.stdout == fromKey.stdout)

        #expect(try mode(ca + "/ca.key") == 0o600)
        #expect(try mode(out + "/web.key") == 0o600)
        #expect(try mode(ca + "/ca.pem") == 0o644)
        #expect(try mode(out + "/web.pem") == 0o644)
        #expect(FileManager.default.isReadableFile(atPath: ca + "/ca.pem"))
    }

    @Test func secondInitWithoutForceLeavesTheCAAlone() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = root + "/ca"
        #expect(try EinoProcess.eino(["identity", "init", "--dir", ca]).status == 0)
        let certificate = try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.pem"))
        let key = try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.key"))

        let again = try EinoProcess.eino(["identity", "init", "--dir", ca])
        #expect(again.status == 1)
        #expect(again.stdout == "")
        #expect(again.stderrLines == [
            "eino identity init: \(ca)/ca.pem already exists; the CA was left unchanged (pass --force to replace it)",
        ])
        #expect(try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.pem")) == certificate)
        #expect(try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.key")) == key)
        #expect(try FileManager.default.contentsOfDirectory(atPath: ca).sorted() == ["ca.key", "ca.pem"])

        let forced = try EinoProcess.eino(["identity", "init", "--dir", ca, "--force", "--trust-domain", "example.org"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.pem")) != certificate)
        #expect(try Data(contentsOf: URL(fileURLWithPath: ca + "/ca.key")) != key)
        #expect(try mode(ca + "/ca.key") == 0o600)

        // Identities follow the CA's trust domain and the --namespace flag.
        let issued = try EinoProcess.eino(["identity", "issue", "--dir", ca, "--service", "api", "--namespace", "prod", "--out", root])
        #expect(issued.status == 0, "\(issued.stderr)")
        let san = try EinoProcess.run(openssl, ["x509", "-noout", "-ext", "subjectAltName", "-in", root + "/api.pem"])
        #expect(san.stdoutLines.last == "    URI:spiffe://example.org/ns/prod/sa/api")
    }

    /// The span openssl reports is the lifetime plus the minute notBefore is backdated for
    /// clock skew.
    @Test(arguments: [("1h", 3660.0), ("90m", 5460), ("1h30m", 5460), ("3600s", 3660), ("24h", 86460)])
    func ttlSetsTheLifetime(ttl: String, span: TimeInterval) throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try EinoProcess.eino(["identity", "init", "--dir", root]).status == 0)
        let issued = try EinoProcess.eino(["identity", "issue", "--dir", root, "--service", "web", "--out", root, "--ttl", ttl])
        #expect(issued.status == 0, "\(issued.stderr)")
        let dates = try EinoProcess.run(openssl, ["x509", "-noout", "-startdate", "-enddate", "-in", root + "/web.pem"])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "MMM d HH:mm:ss yyyy zzz"
        let values = dates.stdoutLines.map { line in
            formatter.date(from: String(line.drop(while: { $0 != "=" }).dropFirst()).replacingOccurrences(of: "  ", with: " "))
        }
        let start = try #require(values.first ?? nil), end = try #require(values.last ?? nil)
        #expect(end.timeIntervalSince(start) == span)
    }

    @Test(arguments: [
        (["identity", "issue", "--dir", "/nonexistent", "--out", "/tmp"], "Error: Missing expected argument '--service <service>'"),
        (["identity", "issue", "--dir", "/nonexistent", "--service", "web", "--out", "/tmp", "--ttl", "5x"],
         "Error: The value '5x' is invalid for '--ttl <ttl>'"),
        (["identity", "issue", "--dir", "/nonexistent", "--service", "web", "--out", "/tmp", "--ttl", "500ms"],
         "Error: --ttl must be at least 1s, got 500ms"),
        (["identity", "init", "--dir", "/tmp/x", "--trust-domain", "Bad.Domain"],
         "Error: --trust-domain: trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got \"Bad.Domain\")"),
    ])
    func usageErrorsExitTwo(arguments: [String], firstLine: String) throws {
        let result = try EinoProcess.eino(arguments)
        #expect(result.status == 2)
        #expect(result.stderrLines.first == firstLine)
    }

    @Test func issueWithoutACAFails() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try EinoProcess.eino(["identity", "issue", "--dir", root, "--service", "web", "--out", root])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["eino identity issue: \(root)/ca.pem: no such file"])
    }

    @Test func badServiceNameIsAUsageError() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try EinoProcess.eino(["identity", "init", "--dir", root]).status == 0)
        let result = try EinoProcess.eino(["identity", "issue", "--dir", root, "--service", "Web_1", "--out", root])
        #expect(result.status == 2)
        #expect(result.stderrLines.first == "Error: invalid SPIFFE ID \"spiffe://cluster.local/ns/default/sa/Web_1\": name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit (got \"Web_1\")")
        #expect(!FileManager.default.fileExists(atPath: root + "/Web_1.key"))
    }
}
