import AsyncHTTPClient
import Foundation
import Identity
import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import SwiftASN1
import Telemetry
import X509

/// The proxy's side of the control plane (docs/api.md, "Proxy API"): join once with a token,
/// then over mTLS renew the certificate at 70 % of its life, register the inbound address
/// with heartbeats, watch the config stream, and every `reportInterval` send a telemetry
/// report (docs/telemetry.md).
///
/// Off the request path: plain async code. It only hands results over — new identity
/// material and new config inputs — and the proxy keeps serving its last good ones whenever
/// the control plane is away. Every failing loop retries with jittered exponential backoff.
public final class ControlLink: Sendable {
    public struct Options: Sendable {
        public var url: String
        /// PEM trust anchor of the control plane (its `ca.pem`).
        public var caFile: String
        public var joinToken: String
        /// Kubernetes mode: a projected ServiceAccount token file, read at each join,
        /// presented instead of the join token.
        public var identityTokenFile: String?
        public var service: String
        public var namespace: String
        /// `host:port` other proxies reach this one's inbound listener at.
        public var advertise: String
        public var labels: [String: String]
        /// What the app beside the proxy speaks, registered with its endpoint.
        public var appProtocol: AppProtocol
        /// Longest wait between retries (jittered); tests shorten it.
        public var maxBackoff: Double
        /// Seconds between telemetry reports; 0 sends none.
        public var reportInterval: Double

        public init(url: String, caFile: String, joinToken: String, identityTokenFile: String? = nil, service: String, namespace: String,
                    advertise: String, labels: [String: String] = [:], appProtocol: AppProtocol = .http,
                    maxBackoff: Double = 30, reportInterval: Double = 10) {
            self.appProtocol = appProtocol
            self.maxBackoff = maxBackoff
            self.reportInterval = reportInterval
            self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
            self.caFile = caFile
            self.joinToken = joinToken
            self.identityTokenFile = identityTokenFile
            self.service = service
            self.namespace = namespace
            self.advertise = advertise
            self.labels = labels
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    let options: Options
    let onIdentity: @Sendable (IdentityMaterial) -> Void
    let onConfig: @Sendable (ControlWire.ConfigUpdate) -> Void
    let log: @Sendable (String) -> Void
    /// What each telemetry report carries.
    let reportContributors: [any ReportContributor]
    private let material = NIOLockedValueBox<IdentityMaterial?>(nil)

    public init(
        _ options: Options,
        reportContributors: [any ReportContributor] = [],
        onIdentity: @escaping @Sendable (IdentityMaterial) -> Void,
        onConfig: @escaping @Sendable (ControlWire.ConfigUpdate) -> Void,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.options = options
        self.reportContributors = reportContributors
        self.onIdentity = onIdentity
        self.onConfig = onConfig
        self.log = log
    }

    /// Joins (retrying until the control plane answers), then keeps renewing, registering
    /// and watching until the task is cancelled. A refused join token is final: it throws.
    public func run() async throws {
        let identity = try await join()
        onIdentity(identity)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.renewLoop() }
            group.addTask { await self.registerLoop() }
            group.addTask { await self.watchLoop() }
            if options.reportInterval > 0 && !reportContributors.isEmpty {
                group.addTask { await self.reportLoop() }
            }
        }
    }

    /// Removes this proxy's endpoint: called on graceful shutdown so callers stop at once.
    public func deregister(within limit: TimeAmount = .seconds(15)) async {
        let address = options.advertise.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? options.advertise
        _ = try? await call(.DELETE, "/v1/endpoints?address=\(address)", body: Optional<Int>.none, mutualTLS: true, timeout: limit)
    }

    // MARK: Join and renewal

    private func join() async throws -> IdentityMaterial {
        let key = WorkloadKey()
        let identity = try SPIFFEID(trustDomain: try trustDomain(), namespace: options.namespace, serviceAccount: options.service)
        var backoff = Backoff(limit: options.maxBackoff)
        while true {
            do {
                let request = try joinRequest(csr: try csr(key, for: identity))
                let reply = try await call(.POST, "/v1/join", body: request, mutualTLS: false, as: ControlWire.Certificate.self)
                let material = try Self.material(reply, key: key)
                self.material.withLockedValue { $0 = material }
                log("joined the control plane as \(material.credentials.identity); certificate valid until \(material.credentials.leaf.notValidAfter)")
                return material
            } catch let refusal as Refusal {
                throw Failure(description: "join refused: \(refusal.message)")
            } catch {
                log("join: \(error); retrying in \(backoff.description)")
                try await backoff.wait()
            }
        }
    }

    /// The credential this proxy joins with: its ServiceAccount token when it has one.
    private func joinRequest(csr: String) throws -> ControlWire.JoinRequest {
        guard let file = options.identityTokenFile else { return ControlWire.JoinRequest(token: options.joinToken, csr: csr) }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Failure(description: "cannot read the ServiceAccount token at \(file) (--identity-token-file)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return ControlWire.JoinRequest(identityToken: token, csr: csr)
    }

    private func renewLoop() async {
        var backoff = Backoff(limit: options.maxBackoff)
        while !Task.isCancelled {
            guard let current = material.withLockedValue({ $0 }) else { return }
            let wait = current.credentials.renewalTime.timeIntervalSinceNow
            if wait > 0 { try? await Task.sleep(for: .seconds(wait)) }
            do {
                let key = WorkloadKey()
                let request = ControlWire.RenewRequest(csr: try csr(key, for: current.credentials.identity))
                let reply = try await call(.POST, "/v1/renew", body: request, mutualTLS: true, as: ControlWire.Certificate.self)
                let renewed = try Self.material(reply, key: key)
                material.withLockedValue { $0 = renewed }
                onIdentity(renewed)
                backoff = Backoff(limit: options.maxBackoff)
                log("certificate renewed; valid until \(renewed.credentials.leaf.notValidAfter)")
            } catch {
                log("renew: \(error); retrying in \(backoff.description)")
                try? await backoff.wait()
            }
        }
    }

    // MARK: Registry and config

    private func registerLoop() async {
        var backoff = Backoff(limit: options.maxBackoff)
        while !Task.isCancelled {
            do {
                let reply = try await call(
                    .POST, "/v1/endpoints", body: ControlWire.Registration(address: options.advertise, labels: options.labels, appProtocol: options.appProtocol),
                    mutualTLS: true, as: ControlWire.RegistrationReply.self)
                backoff = Backoff(limit: options.maxBackoff)
                try? await Task.sleep(for: .seconds(max(0.2, reply.heartbeatSeconds)))
            } catch {
                log("register: \(error); retrying in \(backoff.description)")
                try? await backoff.wait()
            }
        }
    }

    private func watchLoop() async {
        var backoff = Backoff(limit: options.maxBackoff)
        while !Task.isCancelled {
            do {
                try await watchOnce { backoff = Backoff(limit: options.maxBackoff) }
                log("watch: the control plane closed the stream; reconnecting")
            } catch {
                log("watch: \(error); keeping config in force, retrying in \(backoff.description)")
            }
            try? await backoff.wait()
        }
    }

    private func watchOnce(onUpdate: () -> Void) async throws {
        // A read timeout three keep-alives long: a silent control plane is a dead one.
        let client = try makeClient(mutualTLS: true, readTimeout: .seconds(45))
        do {
            var request = HTTPClientRequest(url: options.url + "/v1/watch")
            request.method = .GET
            let response = try await client.execute(request, timeout: .hours(24 * 365))
            guard response.status == .ok else {
                throw Failure(description: "watch answered \(response.status.code)")
            }
            var pending = ByteBuffer()
            for try await var chunk in response.body {
                pending.writeBuffer(&chunk)
                while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                    let length = newline - pending.readerIndex
                    let line = pending.readSlice(length: length)!
                    pending.moveReaderIndex(forwardBy: 1)
                    guard line.readableBytes > 0 else { continue }  // keep-alive
                    let update = try JSONDecoder().decode(ControlWire.ConfigUpdate.self, from: Data(buffer: line))
                    onUpdate()
                    onConfig(update)
                }
                pending.discardReadBytes()
            }
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    // MARK: Telemetry

    /// Every interval, a report of what changed since the last acknowledged one. A failed
    /// report loses nothing: the next starts from the same acknowledged totals.
    private func reportLoop() async {
        var sequence = ReportSequence()
        var failing = false
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(options.reportInterval))
            var again = true
            while again && !Task.isCancelled {
                again = false
                var report = sequence.start()
                do {
                    for contributor in reportContributors { try await contributor.contribute(to: &report) }
                    let reply = try await call(.POST, "/v1/report", body: report, mutualTLS: true, as: TelemetryReport.Reply.self)
                    again = await sequence.take(reply, contributors: reportContributors)
                    if failing { log("report: delivered again (report \(report.sequence))") }
                    failing = false
                } catch {
                    // Logged once per outage; the counts wait for the next report.
                    if !failing { log("report: \(error); keeping the counts for the next report") }
                    failing = true
                }
            }
        }
    }

    // MARK: HTTP

    /// A refusal by the control plane (4xx): retrying the same request cannot help.
    struct Refusal: Error {
        var status: UInt
        var message: String
    }

    private func call<Body: Encodable>(
        _ method: HTTPMethod, _ path: String, body: Body?, mutualTLS: Bool, timeout: TimeAmount = .seconds(15)
    ) async throws -> ByteBuffer {
        let client = try makeClient(mutualTLS: mutualTLS, readTimeout: .seconds(10))
        do {
            var request = HTTPClientRequest(url: options.url + path)
            request.method = method
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
            }
            let response = try await client.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            if (400..<500).contains(response.status.code) {
                let message = (try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: bytes)).message) ?? "status \(response.status.code)"
                throw Refusal(status: response.status.code, message: message)
            }
            guard (200..<300).contains(response.status.code) else { throw Failure(description: "status \(response.status.code)") }
            return bytes
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func call<Body: Encodable, Reply: Decodable>(
        _ method: HTTPMethod, _ path: String, body: Body?, mutualTLS: Bool, as: Reply.Type
    ) async throws -> Reply {
        try JSONDecoder().decode(Reply.self, from: Data(buffer: try await call(method, path, body: body, mutualTLS: mutualTLS)))
    }

    private struct ErrorBody: Decodable {
        var message: String
    }

    /// Trusts only the control plane's CA and checks its host name; with `mutualTLS`
    /// presents this proxy's current certificate.
    private func makeClient(mutualTLS: Bool, readTimeout: TimeAmount) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(options.caFile))
        if mutualTLS {
            guard let material = material.withLockedValue({ $0 }) else { throw Failure(description: "no certificate yet") }
            tls.certificateChain = try material.credentials.certificateChain.map {
                .certificate(try NIOSSLCertificate(bytes: Array($0.serializeAsPEM().pemString.utf8), format: .pem))
            }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(material.credentials.privateKey.derRepresentation), format: .der))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: readTimeout)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The trust domain the control plane's root names as its URI SAN `spiffe://DOMAIN`.
    private func trustDomain() throws -> String {
        let text = try String(contentsOfFile: options.caFile, encoding: .utf8)
        for document in try PEMDocument.parseMultiple(pemString: text) {
            let root = try Certificate(pemDocument: document)
            for case .uniformResourceIdentifier(let uri) in try root.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()
            where uri.hasPrefix("spiffe://") {
                return String(uri.dropFirst("spiffe://".count))
            }
        }
        throw Failure(description: "\(options.caFile) names no trust domain (a URI SAN spiffe://DOMAIN)")
    }

    private func csr(_ key: WorkloadKey, for identity: SPIFFEID) throws -> String {
        try key.certificateSigningRequest(for: identity).serializeAsPEM().pemString
    }

    private static func material(_ reply: ControlWire.Certificate, key: WorkloadKey) throws -> IdentityMaterial {
        let chain = try PEMDocument.parseMultiple(pemString: reply.certificateChain).map { try Certificate(pemDocument: $0) }
        let roots = try PEMDocument.parseMultiple(pemString: reply.trustBundle).map { try Certificate(pemDocument: $0) }
        return IdentityMaterial(credentials: try WorkloadCredentials(certificateChain: chain, privateKey: key.privateKey),
                                trustBundle: TrustBundle(roots: roots))
    }
}

/// Exponential backoff from 0.5 s up to `limit` with ±50 % jitter, so proxies that lost
/// the control plane together do not return in one herd.
struct Backoff: CustomStringConvertible {
    let limit: Double
    private var next: Double = 0.5

    init(limit: Double) {
        self.limit = limit
    }

    mutating func wait() async throws {
        let delay = next * Double.random(in: 0.5...1.5)
        next = min(next * 2, limit)
        try await Task.sleep(for: .seconds(delay))
    }

    var description: String { "~\(next < 1 ? "\(Int(next * 1000))ms" : "\(Int(next))s")" }
}
