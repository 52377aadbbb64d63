import Foundation
import X509

/// The set of roots a workload trusts. It holds several roots during anchor rotation: the new
/// root is added everywhere first, workloads are then re-issued under it, and only after the
/// last certificate from the old root has expired is the old root removed.
public struct TrustBundle: Sendable, Hashable {
    /// The roots, in the order given, without duplicates.
    public let roots: [Certificate]

    public init(roots: [Certificate]) {
        var seen = Set<Certificate>()
        self.roots = roots.filter { seen.insert($0).inserted }
    }

    /// Every certificate in a PEM file (such as `ca.pem`, or several roots concatenated).
    public static func load(file: String) throws -> TrustBundle {
        TrustBundle(roots: try PEM.certificates(in: FileStore.read(file), path: file))
    }

    /// The bundle as concatenated PEM, the form `--ca-file` and `openssl -CAfile` read.
    public func pemEncoded() throws -> String { try PEM.encode(roots) }

    /// Writes the bundle atomically (0644): proxies watching it pick up added or removed
    /// roots without a restart.
    public func write(file: String) throws {
        try FileStore.write(pemEncoded(), to: file, mode: FileStore.publicMode, replace: true)
    }

    public func adding(_ root: Certificate) -> TrustBundle { TrustBundle(roots: roots + [root]) }

    public func removing(_ root: Certificate) -> TrustBundle { TrustBundle(roots: roots.filter { $0 != root }) }
}
