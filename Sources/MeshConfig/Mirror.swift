import Manifests

/// A TrafficMirror, compiled: which requests to the root service are copied, and where.
public struct CompiledMirror: Sendable {
    public var name: String
    public var targets: [MirrorTarget]
    /// nil: every HTTP request is a candidate. Otherwise only those matching one of these.
    public var httpRoutes: [CompiledMatch]?
    /// Set when the responses are to be compared.
    public var compare: MirrorComparison?
    /// Request bodies larger than this are not copied (the copy is skipped and counted).
    public var maxBodyBytes: Int

    /// Whether a request is a candidate for mirroring at all (before sampling).
    @inlinable
    public func applies(method: String, path: Substring, header: (String) -> String?) -> Bool {
        guard let routes = httpRoutes else { return true }
        return routes.contains { $0.matches(method: method, path: path, header: header) }
    }
}

public struct MirrorTarget: Sendable {
    public var service: ServiceKey
    /// Sampling threshold in millionths: a request is copied when `random % 1_000_000` is below it.
    public var threshold: UInt64

    public init(service: ServiceKey, percent: Double) {
        self.service = service
        threshold = UInt64((min(max(percent, 0), 100) * 10_000).rounded())
    }

    @inlinable
    public func samples(random: UInt64) -> Bool {
        random % 1_000_000 < threshold
    }
}

/// What a comparison of primary and shadow responses leaves out.
public struct MirrorComparison: Sendable {
    /// Lower-case header names.
    public var ignoreHeaders: Set<String>
    public var ignoreJSONPaths: [[JSONPath.Segment]]
    /// At most this much of each body is kept; longer bodies are not compared.
    public var maxBodyBytes: Int

    public init(ignoreHeaders: Set<String>, ignoreJSONPaths: [[JSONPath.Segment]], maxBodyBytes: Int) {
        self.ignoreHeaders = ignoreHeaders
        self.ignoreJSONPaths = ignoreJSONPaths
        self.maxBodyBytes = maxBodyBytes
    }
}
