import Manifests

/// TrafficTarget authorization for one destination identity, compiled once per snapshot so
/// the inbound proxy does one dictionary lookup and the route match per request.
///
/// Deny by default: a source is admitted only if some TrafficTarget naming the destination
/// lists it and one of that target's rules admits the traffic. Targets are additive.
/// Decisions where SMI is silent:
/// - A `TCPRoute` rule admits all traffic from the source on its ports — opaque TCP and
///   HTTP alike, since HTTP is carried over TCP (as Linkerd and OSM read it); an
///   `HTTPRouteGroup` rule admits only the HTTP requests matching the named matches (all of
///   the group's when none are named) and never opaque TCP.
/// - Ports (a TCPRoute's `ports`, the destination's `port`) are compared with the port the
///   traffic is delivered to: the app's port.
/// - A rule naming a route group or match that does not exist admits nothing (fails closed).
public struct AccessPolicy: Sendable {
    /// What one rule of one TrafficTarget admits from its sources.
    public struct Grant: Sendable {
        /// The destination port the target is limited to (`spec.destination.port`); nil: any.
        public var port: Int?
        public var traffic: Traffic

        public init(port: Int? = nil, traffic: Traffic) {
            self.port = port
            self.traffic = traffic
        }

        @inlinable
        func covers(port destinationPort: Int) -> Bool {
            if let port, port != destinationPort { return false }
            if case .tcp(let ports) = traffic, !ports.isEmpty, !ports.contains(destinationPort) { return false }
            return true
        }
    }

    public enum Traffic: Sendable {
        /// A TCPRoute: every connection and request on these ports (empty: every port).
        case tcp(ports: [Int])
        /// An HTTPRouteGroup: requests matching one of these.
        case http([CompiledMatch])
    }

    /// Grants by source identity (ServiceAccount name and namespace).
    public let grants: [ServiceKey: [Grant]]

    public init(grants: [ServiceKey: [Grant]]) {
        self.grants = grants
    }

    /// Whether `source` (nil: a caller without a verified identity) may send this request.
    @inlinable
    public func admitsRequest(from source: ServiceKey?, port: Int, method: String, path: Substring, header: (String) -> String?) -> Bool {
        guard let source, let grants = grants[source] else { return false }
        for grant in grants where grant.covers(port: port) {
            switch grant.traffic {
            case .tcp:
                return true
            case .http(let matches):
                for match in matches where match.matches(method: method, path: path, header: header) { return true }
            }
        }
        return false
    }

    /// Whether `source` may open an opaque TCP connection.
    @inlinable
    public func admitsConnection(from source: ServiceKey?, port: Int) -> Bool {
        guard let source, let grants = grants[source] else { return false }
        for grant in grants where grant.covers(port: port) {
            if case .tcp = grant.traffic { return true }
        }
        return false
    }

    /// The policy of `destination` from every TrafficTarget in `resources`; nil when no
    /// TrafficTarget names it (then every caller is admitted).
    static func compile(for destination: ServiceKey, resources: [Resource], routeGroups: [ServiceKey: HTTPRouteGroup]) throws -> AccessPolicy? {
        var tcpRoutes: [ServiceKey: TCPRoute] = [:]
        for resource in resources {
            if case .tcpRoute(let route) = resource.spec {
                tcpRoutes[ServiceKey(name: resource.metadata.name, namespace: resource.metadata.namespace)] = route
            }
        }
        var grants: [ServiceKey: [Grant]] = [:]
        var named = false
        for resource in resources {
            guard case .trafficTarget(let target) = resource.spec,
                  target.destination.name == destination.name, target.destination.namespace == destination.namespace
            else { continue }
            named = true
            let namespace = resource.metadata.namespace
            var admitted: [Grant] = []
            for (index, rule) in target.rules.enumerated() {
                let key = ServiceKey(name: rule.name, namespace: namespace)
                switch rule.kind {
                case .tcpRoute:
                    guard let route = tcpRoutes[key] else { continue }
                    admitted.append(Grant(port: target.destination.port, traffic: .tcp(ports: route.ports)))
                case .httpRouteGroup:
                    guard let group = routeGroups[key] else { continue }
                    let matches = try MeshSnapshot.compiledMatches(of: group, named: rule.matches, resource: resource, field: "spec.rules[\(index)]")
                    if !matches.isEmpty { admitted.append(Grant(port: target.destination.port, traffic: .http(matches))) }
                default:
                    continue
                }
            }
            for source in target.sources {
                grants[ServiceKey(name: source.name, namespace: source.namespace), default: []] += admitted
            }
        }
        return named ? AccessPolicy(grants: grants) : nil
    }
}
