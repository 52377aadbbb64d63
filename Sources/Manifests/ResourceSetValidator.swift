/// Checks that span documents: duplicates, one split and one mirror per root service,
/// and references to route groups.
///
/// An apply set is checked against what is already stored (`existing`): a resource in the
/// set replaces the stored one with the same kind, namespace and name. Only the set's own
/// resources are blamed.
public struct ResourceSetValidator: Sendable {
    public var existing: [Resource]

    public init(existing: [Resource] = []) {
        self.existing = existing
    }

    public func validate(_ resources: [Resource]) -> [ManifestProblem] {
        var problems: [ManifestProblem] = []
        func report(_ resource: Resource, _ field: String, _ message: String) {
            problems.append(ManifestProblem(
                file: resource.source?.file ?? "<stored>", line: resource.source?.line(of: field) ?? 0,
                resource: resource.id.description, field: field, message: message))
        }

        var firstByID: [ResourceID: Resource] = [:]
        var applied: [Resource] = []
        for resource in resources {
            if let first = firstByID[resource.id] {
                report(resource, "metadata.name", "duplicate \(resource.kind.rawValue) \(resource.metadata.namespace)/\(resource.metadata.name); also defined at \(where: first)")
            } else {
                firstByID[resource.id] = resource
                applied.append(resource)
            }
        }
        // Stored resources first: a conflict is blamed on the newcomer.
        let view = existing.filter { firstByID[$0.id] == nil } + applied
        let byID = Dictionary(view.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })

        var rootOwners: [RootKey: Resource] = [:]
        for resource in view {
            guard let root = RootKey(resource) else { continue }
            if let owner = rootOwners[root] {
                if firstByID[resource.id] != nil {
                    report(resource, "spec.service", "\(owner.id) already \(root.verb) service \"\(root.service)\" (\(where: owner)); one \(resource.kind.rawValue) per root service")
                }
            } else {
                rootOwners[root] = resource
            }
        }

        for resource in applied {
            let namespace = resource.metadata.namespace
            switch resource.spec {
            case .trafficSplit(let split):
                checkReferences(split.matches, of: resource, in: byID, report)
            case .trafficMirror(let mirror):
                checkReferences(mirror.matches, of: resource, in: byID, report)
            case .trafficTarget(let target):
                for (index, rule) in target.rules.enumerated() {
                    let field = "spec.rules[\(index)].name"
                    guard let group = byID[ResourceID(kind: rule.kind, namespace: namespace, name: rule.name)] else {
                        report(resource, field, unresolved(rule.kind, namespace, rule.name))
                        continue
                    }
                    guard case .httpRouteGroup(let routes) = group.spec else { continue }
                    for (matchIndex, name) in rule.matches.enumerated() where !routes.matches.contains(where: { $0.name == name }) {
                        report(resource, "spec.rules[\(index)].matches[\(matchIndex)]",
                               "HTTPRouteGroup \(namespace)/\(rule.name) has no match named \"\(name)\"")
                    }
                }
            case .httpRouteGroup, .tcpRoute:
                break
            }
        }
        return problems
    }

    private func checkReferences(
        _ references: [RouteReference], of resource: Resource, in byID: [ResourceID: Resource],
        _ report: (Resource, String, String) -> Void
    ) {
        let namespace = resource.metadata.namespace
        for (index, reference) in references.enumerated()
        where byID[ResourceID(kind: reference.kind, namespace: namespace, name: reference.name)] == nil {
            report(resource, "spec.matches[\(index)].name", unresolved(reference.kind, namespace, reference.name))
        }
    }

    private func unresolved(_ kind: ResourceKind, _ namespace: String, _ name: String) -> String {
        "unresolved reference: \(kind.rawValue) \(namespace)/\(name) is neither in this apply set nor stored"
    }

    /// The root service a split or mirror claims.
    private struct RootKey: Hashable {
        var kind: ResourceKind
        var namespace: String
        var service: String

        init?(_ resource: Resource) {
            switch resource.spec {
            case .trafficSplit(let split): service = split.service
            case .trafficMirror(let mirror): service = mirror.service
            default: return nil
            }
            kind = resource.kind
            namespace = resource.metadata.namespace
        }

        var verb: String { kind == .trafficSplit ? "splits" : "mirrors" }
    }
}

extension String.StringInterpolation {
    mutating func appendInterpolation(where resource: Resource) {
        appendLiteral(resource.source.map { "\($0.file):\($0.line)" } ?? "stored")
    }
}
