import Yams

extension ResourceKind {
    /// The CRD plural: the name `eino get` and the API use for a kind.
    public var plural: String { rawValue.lowercased() + "s" }

    /// Accepts the plural, the singular or the kind, in any case, as kubectl does.
    public init?(plural: String) {
        let name = plural.lowercased()
        guard let kind = ResourceKind.allCases.first(where: { $0.plural == name || $0.rawValue.lowercased() == name })
        else { return nil }
        self = kind
    }
}

/// Writes resources back in the shape of the apiVersion they were written in, so that
/// `eino get -o yaml` output can be edited and applied again.
public enum ManifestEncoder {
    public static func yaml(_ resources: [Resource]) -> String {
        resources.map { (try? Yams.serialize(node: node($0), sortKeys: false)) ?? "" }.joined(separator: "---\n")
    }

    /// The resource as a plain tree of dictionaries, arrays, strings and numbers.
    public static func object(_ resource: Resource) -> Any {
        plain(node(resource))
    }

    static func node(_ resource: Resource) -> Node {
        let version = Int(resource.apiVersion.split(separator: "/").last?.dropFirst("v1alpha".count) ?? "") ?? 4
        var top: [(String, Node)] = [
            ("apiVersion", text(resource.apiVersion)),
            ("kind", text(resource.kind.rawValue)),
            ("metadata", metadata(resource.metadata)),
        ]
        switch resource.spec {
        case .trafficSplit(let split):
            var spec: [(String, Node)] = [("service", text(split.service))]
            if !split.matches.isEmpty { spec.append(("matches", references(split.matches))) }
            spec.append(("backends", list(split.backends.map { backend in
                mapping([("service", text(backend.service)),
                         ("weight", version == 1 ? quantity(backend.weight) : integer(backend.weight))])
            })))
            top.append(("spec", mapping(spec)))
        case .httpRouteGroup(let group):
            let matches = list(group.matches.map { match in
                var pairs: [(String, Node)] = [("name", text(match.name))]
                if let path = match.pathRegex { pairs.append(("pathRegex", text(path, quoted: true))) }
                if !match.methods.isEmpty { pairs.append(("methods", list(match.methods.map { text($0) }))) }
                if !match.headers.isEmpty {
                    pairs.append(("headers", mapping(match.headers.map { ($0.name, text($0.valueRegex, quoted: true)) })))
                }
                return mapping(pairs)
            })
            top.append(version <= 2 ? ("matches", matches) : ("spec", mapping([("matches", matches)])))
        case .tcpRoute(let route):
            let ports = list(route.ports.map { integer(UInt64($0)) })
            top.append(("spec", route.ports.isEmpty ? mapping([]) : mapping([("matches", mapping([("ports", ports)]))])))
        case .trafficTarget(let target):
            func subject(_ subject: TrafficTarget.Subject) -> Node {
                var pairs: [(String, Node)] = [
                    ("kind", text("ServiceAccount")), ("name", text(subject.name)), ("namespace", text(subject.namespace)),
                ]
                if let port = subject.port { pairs.append(("port", integer(UInt64(port)))) }
                return mapping(pairs)
            }
            let rules = list(target.rules.map { rule in
                var pairs: [(String, Node)] = [("kind", text(rule.kind.rawValue)), ("name", text(rule.name))]
                if !rule.matches.isEmpty { pairs.append(("matches", list(rule.matches.map { text($0) }))) }
                return mapping(pairs)
            })
            top.append(("spec", mapping([
                ("destination", subject(target.destination)),
                ("sources", list(target.sources.map(subject))),
                ("rules", rules),
            ])))
        case .trafficMirror(let mirror):
            var spec: [(String, Node)] = [("service", text(mirror.service))]
            if !mirror.matches.isEmpty { spec.append(("matches", references(mirror.matches))) }
            spec.append(("mirrors", list(mirror.mirrors.map { copy in
                mapping([("service", text(copy.service)), ("percent", number(Resource.format(copy.percent)))])
            })))
            if let compare = mirror.compare {
                var pairs: [(String, Node)] = []
                if !compare.ignoreHeaders.isEmpty { pairs.append(("ignoreHeaders", list(compare.ignoreHeaders.map { text($0) }))) }
                if !compare.ignoreJSONPaths.isEmpty {
                    pairs.append(("ignoreJSONPaths", list(compare.ignoreJSONPaths.map { text($0, quoted: true) })))
                }
                pairs.append(("maxBodyBytes", integer(UInt64(compare.maxBodyBytes))))
                spec.append(("compare", mapping(pairs)))
            }
            top.append(("spec", mapping(spec)))
        }
        return mapping(top)
    }

    private static func metadata(_ metadata: ObjectMeta) -> Node {
        var pairs: [(String, Node)] = [("name", text(metadata.name)), ("namespace", text(metadata.namespace))]
        if !metadata.labels.isEmpty { pairs.append(("labels", stringMap(metadata.labels))) }
        if !metadata.annotations.isEmpty { pairs.append(("annotations", stringMap(metadata.annotations))) }
        if let version = metadata.resourceVersion { pairs.append(("resourceVersion", text(version, quoted: true))) }
        return mapping(pairs)
    }

    private static func stringMap(_ map: [String: String]) -> Node {
        mapping(map.sorted { $0.key < $1.key }.map { ($0.key, text($0.value, quoted: true)) })
    }

    private static func references(_ references: [RouteReference]) -> Node {
        list(references.map { mapping([("kind", text($0.kind.rawValue)), ("name", text($0.name))]) })
    }

    /// Milli-units back to the shortest exact quantity: 1000 → 1, 500 → 500m.
    private static func quantity(_ milli: UInt64) -> Node {
        milli % 1000 == 0 ? integer(milli / 1000) : text("\(milli)m")
    }

    private static func mapping(_ pairs: [(String, Node)]) -> Node {
        .mapping(Node.Mapping(pairs.map { (text($0.0), $0.1) }))
    }

    private static func list(_ items: [Node]) -> Node {
        .sequence(Node.Sequence(items))
    }

    /// A string; `quoted` keeps regexes and versions from being read back as numbers.
    private static func text(_ value: String, quoted: Bool = false) -> Node {
        .scalar(Node.Scalar(value, Tag(.str), quoted ? .doubleQuoted : .any))
    }

    private static func integer(_ value: UInt64) -> Node {
        .scalar(Node.Scalar(String(value), Tag(.int)))
    }

    private static func number(_ value: String) -> Node {
        .scalar(Node.Scalar(value, Tag(.float)))
    }

    private static func plain(_ node: Node) -> Any {
        switch node {
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, value) in mapping { object[key.string ?? ""] = plain(value) }
            return object
        case .sequence(let sequence):
            return sequence.map(plain)
        case .scalar(let scalar):
            switch node.tagName {
            case .int: return Int(scalar.string) ?? 0
            case .float: return Double(scalar.string) ?? 0
            default: return scalar.string
            }
        case .alias:
            return ""  // never produced: the encoder builds no aliases
        }
    }
}
