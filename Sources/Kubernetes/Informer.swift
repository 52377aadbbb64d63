import Foundation

/// Keeps a local copy of one kind of object: a list, then a watch from its resourceVersion
/// (bookmarks on), a relist when the server says the version is gone (410), and a retry
/// with jittered backoff when the connection fails. `onChange` gets every object after
/// each change; what it does with them (decode, report what does not) is its own affair.
public actor Informer {
    public let path: String
    private let client: KubernetesClient
    private var objects: [String: JSONValue] = [:]
    private var onChange: @Sendable ([JSONValue]) async -> Void
    /// Longest wait between retries; tests shorten it.
    private let maxBackoff: Double

    public init(client: KubernetesClient, path: String, maxBackoff: Double = 30, onChange: @escaping @Sendable ([JSONValue]) async -> Void) {
        self.client = client
        self.path = path
        self.maxBackoff = maxBackoff
        self.onChange = onChange
    }

    /// Whether the first list has arrived.
    public private(set) var synced = false

    /// Runs until cancelled.
    public func run() async {
        var backoff = 0.5
        while !Task.isCancelled {
            do {
                var version = try await relist()
                backoff = 0.5
                // Watches end (the server closes them every few minutes); go on from the last
                // version seen, until the server says it is too old.
                while !Task.isCancelled {
                    guard let next = try await watch(from: version) else { break }
                    version = next
                }
            } catch {
                if Task.isCancelled { return }
                let wait = backoff * Double.random(in: 0.5...1.0)
                backoff = min(backoff * 2, maxBackoff)
                try? await Task.sleep(for: .seconds(wait))
            }
        }
    }

    private func relist() async throws -> String {
        let (items, version) = try await client.list(path)
        objects = [:]
        for item in items { objects[Self.key(item)] = item }
        synced = true
        await onChange(Array(objects.values))
        return version
    }

    /// Applies one watch's events; returns the version to watch from next, or nil when the
    /// version is gone and a relist is due.
    private func watch(from version: String) async throws -> String? {
        var latest = version
        for try await event in client.watch(path, resourceVersion: version) {
            if let seen = event.object["metadata"]?["resourceVersion"]?.string { latest = seen }
            switch event.type {
            case "ADDED", "MODIFIED":
                objects[Self.key(event.object)] = event.object
                await onChange(Array(objects.values))
            case "DELETED":
                objects[Self.key(event.object)] = nil
                await onChange(Array(objects.values))
            case "BOOKMARK":
                continue
            default:  // ERROR: a Status; 410 Gone means relist
                if case .number(let code)? = event.object["code"], code == 410 { return nil }
                throw KubernetesClient.APIError(status: 0, reason: event.object["reason"]?.string ?? "",
                                                message: event.object["message"]?.string ?? "watch error")
            }
        }
        return latest
    }

    /// `namespace/name`, how objects are told apart.
    public static func key(_ object: JSONValue) -> String {
        (object["metadata"]?["namespace"]?.string ?? "") + "/" + (object["metadata"]?["name"]?.string ?? "")
    }
}
