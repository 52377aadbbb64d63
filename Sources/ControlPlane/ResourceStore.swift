import Foundation
import Manifests

/// The control plane's durable record of applied resources.
///
/// The whole state is one JSON file, replaced atomically on every change: written to a
/// temporary file, fsynced, renamed over the old one, and the directory fsynced. A crash
/// at any instant leaves the old file or the new one, never a torn mix, so a multi-document
/// apply is all-or-nothing without a database. Manifest sets are small (kilobytes), so
/// rewriting everything per apply costs little and keeps the format readable.
public actor ResourceStore {
    public struct State: Codable, Sendable, Equatable {
        /// Increases by one with every change; a resource's `resourceVersion` is the
        /// revision that last changed it.
        public var revision: UInt64
        public var resources: [Resource]

        public init(revision: UInt64 = 0, resources: [Resource] = []) {
            self.revision = revision
            self.resources = resources
        }
    }

    public enum Failure: Error, Equatable, Sendable {
        /// The set failed validation; nothing was stored.
        case invalid([ManifestProblem])
        /// A resource carried a `resourceVersion` that is not the stored one.
        case conflict(id: ResourceID, given: String, stored: String?)
        case notFound([ResourceID])
        case io(String)
    }

    public enum Change: String, Codable, Sendable {
        case created, configured, unchanged, deleted
    }

    public struct Outcome: Codable, Sendable, Equatable {
        public var id: ResourceID
        public var change: Change
        public var resourceVersion: String
    }

    public static let fileName = "resources.json"

    private let file: URL
    public private(set) var state: State
    private var watchers: [UUID: AsyncStream<State>.Continuation] = [:]

    /// Opens the store in `directory`, creating it (mode 0700) when absent.
    public init(directory: URL) throws(Failure) {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io("cannot create \(directory.path): \(error)")
        }
        file = directory.appendingPathComponent(Self.fileName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            state = State()
            return
        }
        do {
            state = try JSONDecoder().decode(State.self, from: Data(contentsOf: file))
        } catch {
            throw .io("cannot read \(file.path): \(error)")
        }
    }

    public func resources(of kind: ResourceKind? = nil) -> [Resource] {
        state.resources.filter { kind == nil || $0.kind == kind }
    }

    public func resource(_ id: ResourceID) -> Resource? {
        state.resources.first { $0.id == id }
    }

    /// Validates `incoming` against what is stored and stores it whole, or nothing.
    /// With `dryRun` it reports what would change and writes nothing.
    public func apply(_ incoming: [Resource], dryRun: Bool = false) throws(Failure) -> [Outcome] {
        let problems = ResourceSetValidator(existing: state.resources).validate(incoming)
        guard problems.isEmpty else { throw .invalid(problems) }

        var byID = Dictionary(uniqueKeysWithValues: state.resources.map { ($0.id, $0) })
        let revision = state.revision + 1
        var outcomes: [Outcome] = []
        for var resource in incoming {
            let stored = byID[resource.id]
            if let given = resource.metadata.resourceVersion, given != stored?.metadata.resourceVersion {
                throw .conflict(id: resource.id, given: given, stored: stored?.metadata.resourceVersion)
            }
            resource.source = nil
            resource.metadata.resourceVersion = stored?.metadata.resourceVersion
            if let stored, stored == resource {
                outcomes.append(Outcome(id: resource.id, change: .unchanged, resourceVersion: stored.metadata.resourceVersion ?? ""))
                continue
            }
            resource.metadata.resourceVersion = String(revision)
            byID[resource.id] = resource
            outcomes.append(Outcome(id: resource.id, change: stored == nil ? .created : .configured, resourceVersion: String(revision)))
        }
        if !dryRun, outcomes.contains(where: { $0.change != .unchanged }) {
            try commit(State(revision: revision, resources: byID.values.sorted { $0.id < $1.id }))
        }
        return outcomes
    }

    /// Deletes every resource in `ids`, or none when one of them is missing.
    public func delete(_ ids: [ResourceID], dryRun: Bool = false) throws(Failure) -> [Outcome] {
        let stored = Set(state.resources.map(\.id))
        let missing = ids.filter { !stored.contains($0) }
        guard missing.isEmpty else { throw .notFound(missing) }
        let doomed = Set(ids)
        let remaining = state.resources.filter { !doomed.contains($0.id) }
        // The stored set is consistent, so anything found now is a reference that the
        // deletion would leave dangling (a split still naming a deleted route group).
        let problems = ResourceSetValidator().validate(remaining)
        guard problems.isEmpty else { throw .invalid(problems) }
        let revision = state.revision + 1
        if !dryRun, !ids.isEmpty {
            try commit(State(revision: revision, resources: remaining))
        }
        return ids.map { Outcome(id: $0, change: .deleted, resourceVersion: String(revision)) }
    }

    /// Every committed state, starting with the current one. The stream ends when the
    /// caller stops iterating.
    public func watch() -> AsyncStream<State> {
        let (stream, continuation) = AsyncStream<State>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        watchers[id] = continuation
        continuation.yield(state)
        continuation.onTermination = { _ in Task { await self.unwatch(id) } }
        return stream
    }

    private func unwatch(_ id: UUID) {
        watchers[id] = nil
    }

    private func commit(_ next: State) throws(Failure) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try DurableFile.replace(file, with: encoder.encode(next))
        } catch {
            throw .io("cannot write \(file.path): \(error)")
        }
        state = next
        for continuation in watchers.values { continuation.yield(next) }
    }
}
