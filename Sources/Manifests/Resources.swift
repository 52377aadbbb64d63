/// The kinds Eino understands. Every supported version of a kind decodes into one model.
public enum ResourceKind: String, CaseIterable, Codable, Sendable, Hashable, Comparable {
    case trafficSplit = "TrafficSplit"
    case httpRouteGroup = "HTTPRouteGroup"
    case tcpRoute = "TCPRoute"
    case trafficTarget = "TrafficTarget"
    case trafficMirror = "TrafficMirror"

    /// The API group and the versions of it this kind is accepted in, oldest first.
    public var group: String {
        switch self {
        case .trafficSplit: "split.smi-spec.io"
        case .httpRouteGroup, .tcpRoute: "specs.smi-spec.io"
        case .trafficTarget: "access.smi-spec.io"
        case .trafficMirror: "mirror.eino.dev"
        }
    }

    public var versions: [String] {
        switch self {
        case .trafficSplit, .httpRouteGroup, .tcpRoute: ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"]
        case .trafficTarget: ["v1alpha2", "v1alpha3"]
        case .trafficMirror: ["v1alpha1"]
        }
    }

    public var apiVersions: [String] { versions.map { "\(group)/\($0)" } }

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The Kubernetes object metadata Eino keeps.
public struct ObjectMeta: Hashable, Sendable, Codable {
    public var name: String
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Set by the control plane's store; an apply carrying a stale one is refused.
    public var resourceVersion: String?

    public init(
        name: String, namespace: String = "default",
        labels: [String: String] = [:], annotations: [String: String] = [:],
        resourceVersion: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
    }
}

/// Names a resource independently of its content.
public struct ResourceID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var kind: ResourceKind
    public var namespace: String
    public var name: String

    public init(kind: ResourceKind, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public var description: String { "\(kind.rawValue)/\(namespace)/\(name)" }

    public static func < (lhs: ResourceID, rhs: ResourceID) -> Bool {
        (lhs.kind, lhs.namespace, lhs.name) < (rhs.kind, rhs.namespace, rhs.name)
    }
}

/// A reference from a split or mirror to a route group in the same namespace.
public struct RouteReference: Hashable, Sendable, Codable {
    public var kind: ResourceKind
    public var name: String

    public init(kind: ResourceKind, name: String) {
        self.kind = kind
        self.name = name
    }
}

public struct TrafficSplit: Hashable, Sendable, Codable {
    public struct Backend: Hashable, Sendable, Codable {
        public var service: String
        /// Relative weight; backend i receives weight_i / Σ weight. v1alpha1 quantities are
        /// held in milli-units (`1` → 1000, `500m` → 500), later versions as written.
        public var weight: UInt64

        public init(service: String, weight: UInt64) {
            self.service = service
            self.weight = weight
        }
    }

    /// The root service: the name clients call.
    public var service: String
    public var backends: [Backend]
    /// Route groups whose matching requests are split; empty means every request.
    public var matches: [RouteReference]

    public init(service: String, backends: [Backend], matches: [RouteReference] = []) {
        self.service = service
        self.backends = backends
        self.matches = matches
    }
}

public struct HTTPRouteGroup: Hashable, Sendable, Codable {
    /// One route. Conditions inside a match are AND-ed; a missing condition matches anything.
    public struct Match: Hashable, Sendable, Codable {
        public var name: String
        /// Anchored at the start of the path when matched.
        public var pathRegex: String?
        /// Upper-case HTTP methods; `*` or an empty list means any.
        public var methods: [String]
        /// Lower-cased header name → value regex.
        public var headers: [Header]

        public init(name: String, pathRegex: String? = nil, methods: [String] = [], headers: [Header] = []) {
            self.name = name
            self.pathRegex = pathRegex
            self.methods = methods
            self.headers = headers
        }
    }

    public struct Header: Hashable, Sendable, Codable {
        public var name: String
        public var valueRegex: String

        public init(name: String, valueRegex: String) {
            self.name = name
            self.valueRegex = valueRegex
        }
    }

    public var matches: [Match]

    public init(matches: [Match]) {
        self.matches = matches
    }
}

public struct TCPRoute: Hashable, Sendable, Codable {
    /// Destination ports this route covers; empty means every port.
    public var ports: [Int]

    public init(ports: [Int] = []) {
        self.ports = ports
    }
}

public struct TrafficTarget: Hashable, Sendable, Codable {
    /// A workload identity: in Eino the service account of a SPIFFE ID.
    public struct Subject: Hashable, Sendable, Codable {
        public var name: String
        public var namespace: String
        public var port: Int?

        public init(name: String, namespace: String, port: Int? = nil) {
            self.name = name
            self.namespace = namespace
            self.port = port
        }
    }

    public struct Rule: Hashable, Sendable, Codable {
        public var kind: ResourceKind
        public var name: String
        /// Names of matches inside the route group; empty means all of them.
        public var matches: [String]

        public init(kind: ResourceKind, name: String, matches: [String] = []) {
            self.kind = kind
            self.name = name
            self.matches = matches
        }
    }

    public var destination: Subject
    public var sources: [Subject]
    public var rules: [Rule]

    public init(destination: Subject, sources: [Subject], rules: [Rule]) {
        self.destination = destination
        self.sources = sources
        self.rules = rules
    }
}

public struct TrafficMirror: Hashable, Sendable, Codable {
    public struct Mirror: Hashable, Sendable, Codable {
        public var service: String
        /// Share of requests copied, 0–100, fractions allowed.
        public var percent: Double

        public init(service: String, percent: Double) {
            self.service = service
            self.percent = percent
        }
    }

    public struct Compare: Hashable, Sendable, Codable {
        public static let defaultMaxBodyBytes = 65_536
        /// Bodies larger than this are never copied: mirror memory stays bounded.
        public static let maxBodyBytesLimit = 16 * 1024 * 1024

        public var ignoreHeaders: [String]
        public var ignoreJSONPaths: [String]
        public var maxBodyBytes: Int

        public init(ignoreHeaders: [String] = [], ignoreJSONPaths: [String] = [], maxBodyBytes: Int = defaultMaxBodyBytes) {
            self.ignoreHeaders = ignoreHeaders
            self.ignoreJSONPaths = ignoreJSONPaths
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public var service: String
    public var matches: [RouteReference]
    public var mirrors: [Mirror]
    public var compare: Compare?

    public init(service: String, matches: [RouteReference] = [], mirrors: [Mirror], compare: Compare? = nil) {
        self.service = service
        self.matches = matches
        self.mirrors = mirrors
        self.compare = compare
    }
}

/// A decoded manifest: metadata, the version it was written in, and its kind's model.
public struct Resource: Hashable, Sendable, Codable {
    public enum Spec: Hashable, Sendable, Codable {
        case trafficSplit(TrafficSplit)
        case httpRouteGroup(HTTPRouteGroup)
        case tcpRoute(TCPRoute)
        case trafficTarget(TrafficTarget)
        case trafficMirror(TrafficMirror)

        public var kind: ResourceKind {
            switch self {
            case .trafficSplit: .trafficSplit
            case .httpRouteGroup: .httpRouteGroup
            case .tcpRoute: .tcpRoute
            case .trafficTarget: .trafficTarget
            case .trafficMirror: .trafficMirror
            }
        }
    }

    /// The apiVersion as written, kept so the resource can be shown back the way it came.
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: Spec
    public var source: SourceLocation?

    public init(apiVersion: String, metadata: ObjectMeta, spec: Spec, source: SourceLocation? = nil) {
        self.apiVersion = apiVersion
        self.metadata = metadata
        self.spec = spec
        self.source = source
    }

    public var kind: ResourceKind { spec.kind }
    public var id: ResourceID { ResourceID(kind: kind, namespace: metadata.namespace, name: metadata.name) }
}
