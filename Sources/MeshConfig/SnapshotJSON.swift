import Foundation

/// The JSON form of a snapshot: what admin `/config` shows and, later, what the control
/// plane streams. Field names are a contract.
public struct SnapshotDocument: Codable, Sendable, Equatable {
    public struct Service: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var clusterIP: String?
        /// How the service's plain endpoints are spoken to: http, h2c or grpc.
        public var appProtocol: AppProtocol
        public var endpoints: [EndpointDocument]
        public var split: Split?
    }

    public struct EndpointDocument: Codable, Sendable, Equatable {
        public var address: String
        public var identity: String?
        public var labels: [String: String]
    }

    public struct Split: Codable, Sendable, Equatable {
        public var name: String
        public var backends: [Backend]
        /// Names of the HTTP route matches; absent when every request is split.
        public var routes: [String]?
    }

    public struct Backend: Codable, Sendable, Equatable {
        public var service: String
        public var weight: UInt64
        /// The share after renormalisation over backends that have endpoints, 0…1.
        public var share: Double
        /// False when it receives nothing (weight 0 or no endpoints).
        public var serving: Bool
    }

    public var version: UInt64
    public var identity: ServiceKey
    public var services: [Service]

    public init(_ snapshot: MeshSnapshot) {
        version = snapshot.version
        identity = snapshot.identity
        services = snapshot.services.values.sorted { $0.key < $1.key }.map { service in
            Service(
                name: service.key.name, namespace: service.key.namespace, clusterIP: service.clusterIP, appProtocol: service.appProtocol,
                endpoints: service.endpoints.map { EndpointDocument(address: $0.address, identity: $0.identity, labels: $0.labels) },
                split: service.split.map { split in
                    Split(name: split.name,
                          backends: split.backends.map { Backend(service: $0.service.name, weight: $0.weight, share: split.share(of: $0), serving: $0.servesTraffic) },
                          routes: split.httpRoutes.map { $0.map(\.name) })
                })
        }
    }

    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8)) + [UInt8(ascii: "\n")]
    }
}
