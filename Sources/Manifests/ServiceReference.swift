/// How a manifest names a Service: `NAME`, `NAME.NS`, `NAME.NS.svc` or
/// `NAME.NS.svc.CLUSTER_DOMAIN`, as clients spell it in DNS (the SMI spec calls the root
/// service "the FQDN that applications will use"). Every spelling means the same service;
/// models keep the short name, so routing, `eino get` and `/config` never see the others.
public enum ServiceReference {
    /// Kubernetes' default, and the mesh's unless `--cluster-domain` says otherwise.
    public static let defaultClusterDomain = "cluster.local"

    /// The short name `text` names, for a resource in `namespace`; or why it names none.
    /// A namespace other than the resource's own is refused: Eino's kinds, like SMI's,
    /// reach only services beside them.
    public static func shortName(_ text: String, namespace: String, clusterDomain: String = defaultClusterDomain) -> Result<String, Problem> {
        // A trailing dot is an absolute DNS name, the same name.
        let name = text.hasSuffix(".") && text.count > 1 ? String(text.dropLast()) : text
        let labels = name.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        if labels.count == 1 {
            return Names.dns1035LabelProblem(name).map { .failure(Problem($0)) } ?? .success(name)
        }
        let spelled = "must be NAME, NAME.NAMESPACE, NAME.NAMESPACE.svc or NAME.NAMESPACE.svc.\(clusterDomain) (got \"\(text)\")"
        if labels.count >= 3, labels[2] != "svc" { return .failure(Problem(spelled)) }
        if labels.count == 4, labels[3] != clusterDomain {
            return .failure(Problem("\"\(text)\" ends in cluster domain \"\(labels[3])\", but this mesh's is \"\(clusterDomain)\""))
        }
        if let problem = Names.dns1035LabelProblem(labels[0]) { return .failure(Problem("\"\(text)\": service \(problem)")) }
        if let problem = Names.dns1123LabelProblem(labels[1]) { return .failure(Problem("\"\(text)\": namespace \(problem)")) }
        guard labels[1] == namespace else {
            return .failure(Problem("\"\(text)\" names namespace \"\(labels[1])\", but this resource is in namespace \"\(namespace)\"; it may only name services in its own namespace"))
        }
        return .success(labels[0])
    }

    public struct Problem: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Why `domain` cannot be a cluster domain (DNS labels joined by dots), or nil.
    public static func clusterDomainProblem(_ domain: String) -> String? {
        Names.dns1123SubdomainProblem(domain).map { "cluster domain \($0)" }
    }
}
