import Manifests
import NIOHTTP1
import NIOHTTP2

/// The header fields a peer proxy sent over the mesh, checked as RFC 9113 §8.2 asks before
/// they reach an HTTP/1 side: names are lower-case tokens, values hold no NUL, CR or LF.
///
/// Mesh connections turn NIOHTTP2's header-block validation off: it checks every block in
/// both directions, and the blocks a proxy sends were parsed from HTTP/1 or checked already
/// on the way in; across both proxies it was 15 % of the instructions of a small request.
/// What it covered is covered here and elsewhere: pseudo-header values (`:path` becomes the
/// HTTP/1 request line) by the HTTP/2-to-HTTP/1 codec, duplicate pseudo-headers by the same,
/// connection-specific fields by `HopByHop`, which drops them from every head it forwards,
/// and content lengths by NIOHTTP2's own check, which stays on. Pure, so it is tested alone.
public enum ReceivedFields {
    public static func areValid(_ headers: HTTPHeaders) -> Bool {
        for (name, value) in headers {
            guard isValidName(name), isValidValue(value) else { return false }
        }
        return true
    }

    /// `token` (RFC 9110 §5.6.2) without upper case, which HTTP/2 forbids.
    static func isValidName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            !bytes.isEmpty && bytes.allSatisfy { Names.isTokenByte($0) && !(0x41...0x5A).contains($0) }
        }
    }

    static func isValidValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            for byte in bytes where byte == 0x00 || byte == 0x0A || byte == 0x0D { return false }
            return true
        }
    }
}

extension NIOHTTP2Handler.ConnectionConfiguration {
    /// A connection to or from a peer proxy: header blocks are left to `ReceivedFields`.
    static var mesh: Self {
        var configuration = Self()
        configuration.headerBlockValidation = .disabled
        return configuration
    }
}
