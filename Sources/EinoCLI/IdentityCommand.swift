import ArgumentParser
import Foundation
import Proxy
import Identity

/// `eino identity`: certificates for static mode, where proxies read their identity from
/// files instead of asking the control plane's CA.
struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Create a root CA and issue workload certificates for static mode.",
        subcommands: [IdentityInitCommand.self, IdentityIssueCommand.self]
    )
}

/// `eino identity init --dir DIR [--trust-domain cluster.local] [--force]`
struct IdentityInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a root CA: DIR/ca.pem (trust anchor) and DIR/ca.key (mode 0600).",
        discussion: """
            Refuses to replace an existing CA unless --force is given: a new root cuts every \
            proxy holding a certificate from the old one off from its peers.
            """
    )

    @Option(help: "Directory for ca.pem and ca.key (created, mode 0700, if missing).")
    var dir: String

    @Option(help: "SPIFFE trust domain of every identity this CA issues.")
    var trustDomain: String = "cluster.local"

    @Flag(help: "Replace an existing CA in DIR.")
    var force = false

    func validate() throws {
        if let problem = SPIFFEID.trustDomainProblem(trustDomain) {
            throw ValidationError("--trust-domain: \(problem)")
        }
    }

    func run() throws {
        do {
            let authority = try CertificateAuthority.create(trustDomain: trustDomain)
            try authority.write(toDirectory: dir, replace: force)
            print("created root CA for trust domain \(trustDomain), valid until \(timestamp(authority.certificate.notValidAfter))")
            print("  \(dir)/\(CertificateAuthority.certificateFileName)  trust anchor: give it to every proxy")
            print("  \(dir)/\(CertificateAuthority.keyFileName)  CA private key, mode 0600: keep it here")
        } catch IdentityError.alreadyExists(let path) {
            printError("eino identity init: \(path) already exists; the CA was left unchanged (pass --force to replace it)")
            throw ExitCode(1)
        } catch let error as IdentityError {
            printError("eino identity init: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `eino identity issue --dir DIR --service NAME [--namespace default] --out DIR [--ttl 24h]`
struct IdentityIssueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue a workload certificate: OUT/NAME.pem (leaf, then chain) and OUT/NAME.key (0600).",
        discussion: """
            The key is made here and signed through a CSR, the same path the control plane's CA \
            uses; the certificate carries exactly one URI SAN, \
            spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME. Existing files in OUT are replaced \
            atomically, so a proxy watching them picks up the new certificate.
            """
    )

    @Option(help: "Directory holding ca.pem and ca.key (from `eino identity init`).")
    var dir: String

    @Option(help: "Service (service account) name: the NAME in the SPIFFE ID and the file names.")
    var service: String

    @Option(help: "Namespace in the SPIFFE ID.")
    var namespace: String = "default"

    @Option(help: "Directory for NAME.pem and NAME.key (created if missing).")
    var out: String

    @Option(help: "Certificate lifetime, e.g. 500ms, 10s, 1m, 24h.")
    var ttl: DurationArgument = DurationArgument(seconds: CertificateAuthority.defaultLeafLifetime, text: "24h")

    func validate() throws {
        // X.509 times have one-second resolution: a shorter lifetime cannot be expressed.
        if ttl.seconds < 1 { throw ValidationError("--ttl must be at least 1s, got \(ttl.text)") }
    }

    func run() throws {
        do {
            let authority = try CertificateAuthority.load(fromDirectory: dir)
            let identity: SPIFFEID
            do {
                identity = try SPIFFEID(trustDomain: authority.trustDomain, namespace: namespace, serviceAccount: service)
            } catch {
                throw ValidationError("\(error)")
            }
            let key = WorkloadKey()
            let csr = try key.certificateSigningRequest(for: identity)
            let leaf = try authority.issue(csr, for: identity, lifetime: ttl.seconds)
            let credentials = try WorkloadCredentials(certificateChain: [leaf], privateKey: key.privateKey)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let certificateFile = "\(out)/\(service).pem", keyFile = "\(out)/\(service).key"
            try credentials.write(certificateFile: certificateFile, keyFile: keyFile)
            print("issued \(identity), valid until \(timestamp(leaf.notValidAfter)), renew after \(timestamp(credentials.renewalTime))")
            print("  \(certificateFile)  certificate")
            print("  \(keyFile)  private key, mode 0600")
        } catch let error as IdentityError {
            printError("eino identity issue: \(error)")
            throw ExitCode(1)
        } catch let error as CocoaError {
            printError("eino identity issue: \(error.localizedDescription)")
            throw ExitCode(1)
        }
    }
}

private func timestamp(_ date: Date) -> String {
    date.formatted(.iso8601)
}

/// A duration as CLI.md writes them: a number and a unit (`ms`, `s`, `m`, `h`), optionally
/// several in a row (`1h30m`).
struct DurationArgument: ExpressibleByArgument, Sendable {
    var seconds: TimeInterval
    var text: String

    init(seconds: TimeInterval, text: String) {
        self.seconds = seconds
        self.text = text
    }

    init?(argument: String) {
        guard let seconds = DurationArgument.parse(argument) else { return nil }
        self.init(seconds: seconds, text: argument)
    }

    var defaultValueDescription: String { text }

    static func parse(_ text: String) -> TimeInterval? {
        parseDuration(text).map { Double($0.nanoseconds) / 1e9 }
    }
}
