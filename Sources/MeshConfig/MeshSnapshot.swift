import Manifests

/// The compiled, immutable configuration a proxy runs on. A new one replaces the old one
/// whole; a request reads the snapshot once and keeps using it.
public final class MeshSnapshot: Sendable {
    public let version: UInt64
    /// This proxy's own service.
    public let identity: ServiceKey
    public let services: [ServiceKey: MeshService]
    /// Services by virtual IP, for transparently redirected connections.
    public let servicesByClusterIP: [String: MeshService]
    /// Services by the IP address of one of their endpoints (a pod's IP), for redirected
    /// connections that name a pod rather than a virtual IP. An address shared by endpoints
    /// of two services says nothing about which one is meant, so it is left out.
    public let servicesByEndpointIP: [String: MeshService]
    /// Every input resource, kept for `/config` and for later features (mirrors).
    public let resources: [Resource]
    /// Who may reach this proxy's identity; nil when no TrafficTarget names it (anyone may).
    public let accessPolicy: AccessPolicy?

    public init(version: UInt64, identity: ServiceKey, services: [ServiceKey: MeshService], resources: [Resource], accessPolicy: AccessPolicy? = nil) {
        self.version = version
        self.identity = identity
        self.services = services
        self.resources = resources
        self.accessPolicy = accessPolicy
        var byIP: [String: MeshService] = [:]
        for service in services.values {
            if let ip = service.clusterIP { byIP[ip] = service }
        }
        servicesByClusterIP = byIP
        var byEndpoint: [String: MeshService] = [:]
        var shared = Set<String>()
        for service in services.values {
            for endpoint in service.endpoints {
                let ip = endpoint.host.lowercased()
                if let other = byEndpoint[ip], other.key != service.key { shared.insert(ip) }
                byEndpoint[ip] = service
            }
        }
        for ip in shared { byEndpoint[ip] = nil }
        servicesByEndpointIP = byEndpoint
    }

    /// The service whose virtual IP a redirected connection was going to.
    public func service(forClusterIP ip: String) -> MeshService? {
        servicesByClusterIP[ip]
    }

    /// The service a redirected connection to `ip` is for: the one with that virtual IP,
    /// else the one with an endpoint at that address; nil outside the mesh.
    public func service(forDestination ip: String) -> MeshService? {
        servicesByClusterIP[ip] ?? servicesByEndpointIP[ip.lowercased()]
    }

    /// Resolves a request authority (`Host` or `:authority`) to a service, using this
    /// proxy's namespace for short names. See ``Authority``.
    public func service(forAuthority authority: String) -> MeshService? {
        guard let key = Authority.serviceKey(authority, defaultNamespace: identity.namespace) else { return nil }
        return services[key]
    }

    /// Compiles a snapshot from services and manifests that were already validated.
    /// Throws `CompileError` for what validation cannot see (regexes that do not compile,
    /// splits whose every weight is 0 …).
    public static func compile(version: UInt64, identity: ServiceKey, services specs: [ServiceSpec], resources: [Resource]) throws -> MeshSnapshot {
        var endpointsByKey: [ServiceKey: [Endpoint]] = [:]
        var labelsByKey: [ServiceKey: [String: String]] = [:]
        var clusterIPs: [ServiceKey: String] = [:]
        var appProtocols: [ServiceKey: AppProtocol] = [:]
        for spec in specs {
            endpointsByKey[spec.key, default: []] += spec.endpoints
            labelsByKey[spec.key] = spec.labels
            if let ip = spec.clusterIP { clusterIPs[spec.key] = ip }
            if let appProtocol = spec.appProtocol { appProtocols[spec.key] = appProtocol }
        }

        var routeGroups: [ServiceKey: HTTPRouteGroup] = [:]  // keyed by group name + namespace
        for resource in resources {
            if case .httpRouteGroup(let group) = resource.spec {
                routeGroups[ServiceKey(name: resource.metadata.name, namespace: resource.metadata.namespace)] = group
            }
        }

        var splits: [ServiceKey: CompiledSplit] = [:]
        for resource in resources {
            guard case .trafficSplit(let split) = resource.spec else { continue }
            let namespace = resource.metadata.namespace
            let root = ServiceKey(name: split.service, namespace: namespace)
            var backends: [SplitBackend] = []
            var cumulative: UInt64 = 0
            var total: UInt64 = 0
            for backend in split.backends {
                let key = ServiceKey(name: backend.service, namespace: namespace)
                total += backend.weight
                let serves = backend.weight > 0 && !(endpointsByKey[key] ?? []).isEmpty
                if serves { cumulative += backend.weight }
                backends.append(SplitBackend(service: key, weight: backend.weight, servesTraffic: serves, cumulativeWeight: serves ? cumulative : 0))
            }
            guard total > 0 else {
                throw CompileError(resource: resource, field: "spec.backends", message: "every backend has weight 0; at least one must be above 0")
            }
            let (routes, tcpRoutes) = try compileMatches(split.matches, of: resource, routeGroups: routeGroups)
            splits[root] = CompiledSplit(
                name: resource.metadata.name, backends: backends, totalWeight: cumulative,
                httpRoutes: routes, splitsTCP: tcpRoutes || routes == nil)
        }

        var mirrors: [ServiceKey: CompiledMirror] = [:]
        for resource in resources {
            guard case .trafficMirror(let mirror) = resource.spec else { continue }
            let namespace = resource.metadata.namespace
            let (routes, _) = try compileMatches(mirror.matches, of: resource, routeGroups: routeGroups)
            let compare = mirror.compare.map { compare in
                MirrorComparison(
                    ignoreHeaders: Set(compare.ignoreHeaders.map { $0.lowercased() }),
                    ignoreJSONPaths: compare.ignoreJSONPaths.compactMap(JSONPath.parse),
                    maxBodyBytes: compare.maxBodyBytes)
            }
            mirrors[ServiceKey(name: mirror.service, namespace: namespace)] = CompiledMirror(
                name: resource.metadata.name,
                targets: mirror.mirrors.map { MirrorTarget(service: ServiceKey(name: $0.service, namespace: namespace), percent: $0.percent) },
                httpRoutes: routes, compare: compare,
                maxBodyBytes: mirror.compare?.maxBodyBytes ?? TrafficMirror.Compare.defaultMaxBodyBytes)
        }

        var keys = Set(endpointsByKey.keys).union(splits.keys)
        for split in splits.values { keys.formUnion(split.backends.map(\.service)) }
        for (root, mirror) in mirrors {
            keys.insert(root)
            keys.formUnion(mirror.targets.map(\.service))
        }
        var services: [ServiceKey: MeshService] = [:]
        for key in keys {
            services[key] = MeshService(key: key, endpoints: endpointsByKey[key] ?? [], labels: labelsByKey[key] ?? [:], clusterIP: clusterIPs[key],
                                        appProtocol: appProtocols[key] ?? .http, split: splits[key], mirror: mirrors[key])
        }
        let accessPolicy = try AccessPolicy.compile(for: identity, resources: resources, routeGroups: routeGroups)
        return MeshSnapshot(version: version, identity: identity, services: services, resources: resources, accessPolicy: accessPolicy)
    }

    /// The matches of `group` named in `names` (all of them when `names` is empty), compiled.
    /// A regex that does not compile is blamed on `field` of `resource`, the referrer.
    static func compiledMatches(of group: HTTPRouteGroup, named names: [String], resource: Resource, field: String) throws -> [CompiledMatch] {
        var compiled: [CompiledMatch] = []
        for match in group.matches where names.isEmpty || names.contains(match.name) {
            do {
                compiled.append(try CompiledMatch(HTTPRouteGroupMatchInput(
                    name: match.name, pathRegex: match.pathRegex, methods: match.methods,
                    headers: match.headers.map { ($0.name, $0.valueRegex) })))
            } catch {
                throw CompileError(resource: resource, field: field, message: "route \(match.name): \(error)")
            }
        }
        return compiled
    }

    /// The HTTP matches of a split's or mirror's route-group references (nil when it names no
    /// HTTPRouteGroup: every request), and whether it names a TCPRoute.
    private static func compileMatches(_ references: [RouteReference], of resource: Resource, routeGroups: [ServiceKey: HTTPRouteGroup]) throws -> ([CompiledMatch]?, Bool) {
        let namespace = resource.metadata.namespace
        var routes: [CompiledMatch] = []
        var httpRoutes = false
        var tcpRoutes = false
        for (index, reference) in references.enumerated() {
            switch reference.kind {
            case .httpRouteGroup:
                httpRoutes = true
                guard let group = routeGroups[ServiceKey(name: reference.name, namespace: namespace)] else {
                    throw CompileError(resource: resource, field: "spec.matches[\(index)].name", message: "HTTPRouteGroup \(namespace)/\(reference.name) not found")
                }
                routes += try compiledMatches(of: group, named: [], resource: resource, field: "spec.matches[\(index)]")
            case .tcpRoute:
                tcpRoutes = true
            default:
                continue
            }
        }
        return (httpRoutes ? routes : nil, tcpRoutes)
    }

    public struct CompileError: Error, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var resource: String
        public var field: String
        public var message: String

        init(resource: Resource, field: String, message: String) {
            file = resource.source?.file ?? "<config>"
            line = resource.source?.line(of: field) ?? 0
            self.resource = resource.id.description
            self.field = field
            self.message = message
        }

        public var description: String { "\(file):\(line): \(resource): \(field): \(message)" }
    }
}

/// A service in a snapshot.
public final class MeshService: Sendable {
    public let key: ServiceKey
    public let endpoints: [Endpoint]
    public let labels: [String: String]
    public let clusterIP: String?
    /// How its plain endpoints are spoken to (a mesh endpoint is always an HTTP/2 stream
    /// over mTLS; its proxy speaks its app's protocol).
    public let appProtocol: AppProtocol
    public let split: CompiledSplit?
    /// The TrafficMirror whose root is this service.
    public let mirror: CompiledMirror?

    public init(key: ServiceKey, endpoints: [Endpoint], labels: [String: String] = [:], clusterIP: String? = nil,
                appProtocol: AppProtocol = .http, split: CompiledSplit?, mirror: CompiledMirror? = nil) {
        self.key = key
        self.endpoints = endpoints
        self.labels = labels
        self.clusterIP = clusterIP
        self.appProtocol = appProtocol
        self.split = split
        self.mirror = mirror
    }

    /// Where one request goes: the service whose endpoints serve it.
    public enum Choice: Equatable, Sendable {
        case service(ServiceKey)
        /// Nothing can serve: every candidate has no endpoints.
        case noEndpoints
    }

    /// Chooses the backend for one HTTP request. `random` is any uniformly random value;
    /// it is the only source of chance, so callers (and tests) control it.
    @inlinable
    public func route(method: String, path: Substring, header: (String) -> String?, random: UInt64) -> Choice {
        guard let split else { return endpoints.isEmpty ? .noEndpoints : .service(key) }
        if let routes = split.httpRoutes {
            if !routes.contains(where: { $0.matches(method: method, path: path, header: header) }) { return endpoints.isEmpty ? .noEndpoints : .service(key) }
        }
        return split.pick(random: random)
    }

    /// Chooses the backend for one opaque TCP connection.
    public func routeConnection(random: UInt64) -> Choice {
        guard let split, split.splitsTCP else { return endpoints.isEmpty ? .noEndpoints : .service(key) }
        return split.pick(random: random)
    }
}

public struct SplitBackend: Sendable, Hashable {
    public var service: ServiceKey
    public var weight: UInt64
    /// False for weight 0 and for backends without endpoints: they get no share.
    public var servesTraffic: Bool
    /// Running sum of the weights of serving backends up to and including this one.
    public var cumulativeWeight: UInt64
}

public struct CompiledSplit: Sendable {
    public var name: String
    public var backends: [SplitBackend]
    /// Sum of the weights of serving backends: the weights renormalised.
    public var totalWeight: UInt64
    /// nil: every HTTP request is split. Otherwise only requests matching one of these.
    public var httpRoutes: [CompiledMatch]?
    /// Opaque TCP connections are split when the split has no matches or names a TCPRoute.
    public var splitsTCP: Bool

    @inlinable
    public func pick(random: UInt64) -> MeshService.Choice {
        guard totalWeight > 0 else { return .noEndpoints }
        let point = random % totalWeight
        for backend in backends where backend.servesTraffic && point < backend.cumulativeWeight {
            return .service(backend.service)
        }
        return .noEndpoints
    }

    /// The share of traffic each backend receives after renormalisation, 0…1.
    public func share(of backend: SplitBackend) -> Double {
        guard backend.servesTraffic, totalWeight > 0 else { return 0 }
        return Double(backend.weight) / Double(totalWeight)
    }
}

/// Request authorities as clients write them.
public enum Authority {
    /// `web`, `web:80`, `web.default`, `web.default.svc`, `web.default.svc.cluster.local`
    /// (any cluster domain after `svc`) name service `web` in namespace `default`; a short
    /// name means the caller's namespace. Returns nil for what cannot name a service (an
    /// IP address, an empty host, a name not in that form).
    public static func serviceKey(_ authority: String, defaultNamespace: String) -> ServiceKey? {
        var host = Substring(authority)
        if host.hasPrefix("[") { return nil }  // IPv6 literal
        if let colon = host.utf8.firstIndex(of: UInt8(ascii: ":")) { host = host[..<colon] }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty else { return nil }
        var lowered: String? = nil
        if host.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            lowered = host.lowercased()
        }
        let text = lowered.map { Substring($0) } ?? host
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        if labels.contains(where: \.isEmpty) { return nil }
        switch labels.count {
        case 1:
            return ServiceKey(name: String(labels[0]), namespace: defaultNamespace)
        case 2:
            return ServiceKey(name: String(labels[0]), namespace: String(labels[1]))
        default:
            guard labels[2] == "svc" else { return nil }
            return ServiceKey(name: String(labels[0]), namespace: String(labels[1]))
        }
    }
}
