import MeshConfig

/// Raw request authority → service, for one snapshot, so the `Host` every request repeats is
/// parsed once. One per event loop (not shared); bounded by clearing when it grows past
/// `limit`. Public so `eino-microbench` can time it as the request path runs it.
public struct AuthorityCache {
    private var entries: [String: MeshService?] = [:]
    let limit: Int

    public init(limit: Int = 4096) {
        self.limit = limit
    }

    /// The service `authority` names in `snapshot` (nil: none), from the cache when seen.
    public mutating func service(forAuthority authority: String, in snapshot: MeshSnapshot?) -> MeshService? {
        if let cached = entries[authority] { return cached }
        let found = snapshot?.service(forAuthority: authority)
        if entries.count > limit { entries.removeAll(keepingCapacity: true) }
        entries[authority] = found
        return found
    }

    /// Forgets everything: a new snapshot resolves names anew.
    public mutating func removeAll() {
        entries.removeAll(keepingCapacity: true)
    }
}
