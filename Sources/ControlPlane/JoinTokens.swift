import Crypto
import Foundation

/// Join tokens: each buys one certificate (or `uses` of them; 0 = any number) for one
/// service, before it expires. Several uses suit a Deployment whose replicas share one
/// Secret: each new pod joins with the same token.
///
/// Only SHA-256 digests are kept (in `DATA_DIR/tokens.json`, mode 0600), so the file does
/// not hand out tokens to whoever reads it. A token is marked used durably *before* the
/// certificate is returned: a crash in between costs a token, never allows a second use.
public actor JoinTokens {
    struct Record: Codable, Sendable {
        var service: String
        var namespace: String
        var expiresAt: Double
        /// Used up: no redemption is left.
        var used: Bool
        /// Redemptions allowed (0 = no limit until expiry); absent in files written before
        /// tokens had uses: one.
        var uses: Int?
        var redeemed: Int?
    }

    public enum Refusal: Error, Equatable, Sendable {
        case unknown, used, expired
    }

    public static let fileName = "tokens.json"

    private let file: URL
    private var records: [String: Record]

    public init(directory: URL) throws {
        file = directory.appendingPathComponent(Self.fileName)
        if let data = FileManager.default.contents(atPath: file.path) {
            records = try JSONDecoder().decode([String: Record].self, from: data)
        } else {
            records = [:]
        }
    }

    /// A new token for `service` in `namespace`, valid for `ttl` seconds and `uses`
    /// redemptions (0 = any number).
    public func create(service: String, namespace: String, ttl: TimeInterval, uses: Int = 1, now: Date = Date()) throws -> (token: String, expiresAt: Date) {
        let token = Secrets.newToken()
        let expiresAt = now.addingTimeInterval(ttl)
        records = records.filter { $0.value.expiresAt > now.timeIntervalSince1970 }
        records[Self.digest(token)] = Record(service: service, namespace: namespace, expiresAt: expiresAt.timeIntervalSince1970, used: false, uses: uses, redeemed: 0)
        try save()
        return (token, expiresAt)
    }

    /// Uses `token` once and returns whom it was for.
    public func redeem(_ token: String, now: Date = Date()) throws -> (service: String, namespace: String) {
        let key = Self.digest(token)
        guard var record = records[key] else { throw Refusal.unknown }
        guard !record.used else { throw Refusal.used }
        guard record.expiresAt > now.timeIntervalSince1970 else { throw Refusal.expired }
        let redeemed = (record.redeemed ?? 0) + 1
        let uses = record.uses ?? 1
        record.redeemed = redeemed
        record.used = uses > 0 && redeemed >= uses
        records[key] = record
        try save()
        return (record.service, record.namespace)
    }

    private func save() throws {
        try DurableFile.replace(file, with: JSONEncoder().encode(records), mode: 0o600)
    }

    private static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
