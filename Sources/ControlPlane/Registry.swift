import Foundation
import MeshConfig

/// Where each service's proxies can be reached, as the proxies themselves report it.
///
/// Kept in memory: after a control-plane restart, proxies reconnect and register again
/// within one heartbeat, which is simpler and fresher than persisting addresses that may
/// have died meanwhile.
public actor Registry {
    public struct Entry: Codable, Sendable, Equatable {
        public var service: ServiceKey
        public var identity: String
        public var address: String
        public var labels: [String: String]
        public var appProtocol: AppProtocol?
        public var lastSeen: Date
    }

    /// How often proxies re-register; three missed beats and the endpoint is dropped.
    public let heartbeat: TimeInterval
    private var entries: [String: Entry] = [:]  // by address
    private var onChange: @Sendable () async -> Void

    public init(heartbeat: TimeInterval = 5, onChange: @escaping @Sendable () async -> Void = {}) {
        self.heartbeat = heartbeat
        self.onChange = onChange
    }

    public func setOnChange(_ onChange: @escaping @Sendable () async -> Void) {
        self.onChange = onChange
    }

    public var all: [Entry] { entries.values.sorted { ($0.service, $0.address) < ($1.service, $1.address) } }

    /// Registers or refreshes an endpoint. Only a change of who is where counts as a change.
    public func register(service: ServiceKey, identity: String, address: String, labels: [String: String],
                         appProtocol: AppProtocol? = nil, now: Date = Date()) async {
        let previous = entries[address]
        entries[address] = Entry(service: service, identity: identity, address: address, labels: labels, appProtocol: appProtocol, lastSeen: now)
        if previous?.service != service || previous?.identity != identity || previous?.labels != labels || previous?.appProtocol != appProtocol {
            await onChange()
        }
    }

    /// Removes an endpoint on a proxy's graceful shutdown; only its own identity may.
    public func deregister(identity: String, address: String) async {
        guard entries[address]?.identity == identity else { return }
        entries[address] = nil
        await onChange()
    }

    /// Drops endpoints that missed three heartbeats.
    public func expire(now: Date = Date()) async {
        let deadline = now.addingTimeInterval(-3 * heartbeat)
        let stale = entries.filter { $0.value.lastSeen < deadline }
        guard !stale.isEmpty else { return }
        for address in stale.keys { entries[address] = nil }
        await onChange()
    }

    /// Endpoints grouped into services, as the config stream carries them. A service's app
    /// protocol is what its proxies declare (the first, by address, should they differ).
    public func services() -> [ServiceSpec] {
        Dictionary(grouping: entries.values, by: \.service).map { key, entries in
            let sorted = entries.sorted { $0.address < $1.address }
            return ServiceSpec(key: key, endpoints: sorted.compactMap { entry in
                guard case .success(let parsed) = Endpoint.parseAddress(entry.address) else { return nil }
                return Endpoint(host: parsed.host, port: parsed.port, identity: entry.identity, labels: entry.labels)
            }, appProtocol: sorted.lazy.compactMap(\.appProtocol).first)
        }.sorted { $0.key < $1.key }
    }
}
