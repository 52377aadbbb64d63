#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Bearer secrets: the admin token and join tokens.
public enum Secrets {
    /// 32 random bytes as lower-case hex.
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Compares without an early exit, so timing does not reveal how much of a guess matched.
    public static func equal(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8), b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Reads the token in `url`, creating it (mode 0600, never wider) when absent.
    public static func loadOrCreateToken(at url: URL) throws -> String {
        if let data = FileManager.default.contents(atPath: url.path) {
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !token.isEmpty { return token }
        }
        let token = newToken()
        try DurableFile.replace(url, with: Data((token + "\n").utf8), mode: 0o600)
        return token
    }
}
