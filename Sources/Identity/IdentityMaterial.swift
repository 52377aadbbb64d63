/// Everything a proxy needs for mTLS, read from the three static-mode files
/// (`tls.certFile`, `tls.keyFile`, `tls.caFile`).
///
/// Rotation in static mode is a reload: the proxy calls `load` again (on a timer or when the
/// files change) and, if the result differs from what it runs with, builds new
/// `MeshTLSServer` / `MeshTLSClient` values for new connections. A load that fails — a file
/// missing, or a key and certificate from different issues caught mid-rotation — leaves the
/// proxy on its current material; it simply tries again later.
public struct IdentityMaterial: Sendable, Equatable {
    public let credentials: WorkloadCredentials
    public let trustBundle: TrustBundle

    public init(credentials: WorkloadCredentials, trustBundle: TrustBundle) {
        self.credentials = credentials
        self.trustBundle = trustBundle
    }

    public static func load(certificateFile: String, keyFile: String, bundleFile: String) throws -> IdentityMaterial {
        IdentityMaterial(
            credentials: try WorkloadCredentials.load(certificateFile: certificateFile, keyFile: keyFile),
            trustBundle: try TrustBundle.load(file: bundleFile))
    }
}
