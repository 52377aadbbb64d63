import Foundation
import Manifests
import Yams

/// The static proxy file (`eino proxy --config FILE`): a `ProxyConfig` document followed
/// by any SMI / Eino manifests. See CLI.md, "Static proxy config".
public struct StaticProxyConfig: Sendable {
    public static let apiVersion = "proxy.eino.dev/v1alpha1"
    public static let kind = "ProxyConfig"

    public var identity: ServiceKey?
    /// What fully qualified service references in the manifests end in.
    public var clusterDomain = ServiceReference.defaultClusterDomain
    public var tls: TLSFiles?
    public var services: [ServiceSpec]
    public var resources: [Resource]

    /// One problem, in the same `file:line: Kind/ns/name: field: message` form as manifests.
    public typealias Problem = ManifestProblem

    /// Every problem of one file, in file order.
    public struct Problems: Error, Sendable, CustomStringConvertible {
        public var problems: [Problem]
        public init(_ problems: [Problem]) { self.problems = problems }
        public var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    /// Reads and checks a file. On failure every problem found is returned, one a line.
    public static func load(path: String) -> Result<StaticProxyConfig, Problems> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(Problems([Problem(file: path, line: 0, resource: "(file)", field: "(file)", message: "cannot read the file")]))
        }
        return parse(bytes: Array(data), file: path)
    }

    public static func parse(bytes: [UInt8], file: String) -> Result<StaticProxyConfig, Problems> {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Problems([Problem(file: file, line: 1, resource: "document 1", field: "(file)", message: "not valid UTF-8")]))
        }
        return parse(text, file: file)
    }

    public static func parse(_ text: String, file: String) -> Result<StaticProxyConfig, Problems> {
        // The first document is ours; the manifest decoder reads them all (so its line
        // numbers and document indexes stay those of the file) and its verdict on the first
        // one, which is not an SMI kind, is ignored.
        let first: Node?
        do {
            first = try ManifestDecoder.yamlParser(text).nextRoot()
        } catch {
            first = nil  // reported by the manifest decoder below, with its line
        }
        var config = StaticProxyConfig(identity: nil, tls: nil, services: [], resources: [])
        let reader = ProxyConfigReader(file: file)
        if let first, let parsed = reader.read(first) { config = parsed }
        let decoded = ManifestDecoder.decode(text, file: file, clusterDomain: config.clusterDomain)
        var problems: [Problem] = decoded.streamProblems.map(Problem.init) + reader.problems
        if first == nil, decoded.streamProblems.isEmpty {
            problems.append(Problem(file: file, line: 1, resource: kind, field: "(document)", message: "the file is empty; its first document must be a \(apiVersion) \(kind)"))
        }
        for document in decoded.documents.dropFirst() {
            switch document {
            case .resource(let resource): config.resources.append(resource)
            case .invalid(let found): problems += found.map(Problem.init)
            case .empty: continue
            }
        }
        if problems.isEmpty {
            problems += ResourceSetValidator().validate(config.resources).map(Problem.init)
        }
        if problems.isEmpty {
            // Compile once to catch what only compiling sees (regexes, all-zero weights).
            do {
                _ = try MeshSnapshot.compile(version: 0, identity: config.identity ?? ServiceKey(name: "-"), services: config.services, resources: config.resources)
            } catch let error as MeshSnapshot.CompileError {
                problems.append(Problem(file: error.file, line: error.line, resource: error.resource, field: error.field, message: error.message))
            } catch {
                problems.append(Problem(file: file, line: 0, resource: "(file)", field: "(file)", message: "\(error)"))
            }
        }
        return problems.isEmpty ? .success(config) : .failure(Problems(problems))
    }
}

extension StaticProxyConfig.Problem {
    init(_ problem: ManifestProblem) {
        self.init(file: problem.file, line: problem.line, resource: problem.resource, field: problem.field, message: problem.message)
    }
}

/// Reads the `ProxyConfig` document, collecting every problem with its line.
final class ProxyConfigReader {
    let file: String
    private(set) var problems: [StaticProxyConfig.Problem] = []

    init(file: String) {
        self.file = file
    }

    private func report(_ node: Node?, _ field: String, _ message: String, line: Int? = nil) {
        problems.append(.init(file: file, line: line ?? node?.mark?.line ?? 1, resource: StaticProxyConfig.kind, field: field, message: message))
    }

    /// The entries of a mapping, with unknown keys reported.
    private func mapping(_ node: Node, _ field: String, allowed: Set<String>) -> [String: Node]? {
        guard let mapping = node.mapping else {
            report(node, field.isEmpty ? "(document)" : field, "must be a mapping")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { continue }
            let path = field.isEmpty ? key : "\(field).\(key)"
            if !allowed.contains(key) {
                report(keyNode, path, "unknown field; allowed: \(allowed.sorted().joined(separator: ", "))")
                continue
            }
            result[key] = value
        }
        return result
    }

    private func string(_ node: Node?, _ field: String, parent: Node, required: Bool) -> String? {
        guard let node else {
            if required { report(parent, field, "required") }
            return nil
        }
        guard case .scalar(let scalar) = node, node.null == nil, !scalar.string.isEmpty else {
            report(node, field, "must be a non-empty string")
            return nil
        }
        return scalar.string
    }

    private func labels(_ node: Node?, _ field: String) -> [String: String] {
        guard let node else { return [:] }
        guard let mapping = node.mapping else {
            report(node, field, "must be a mapping of strings")
            return [:]
        }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = key.string, case .scalar(let scalar) = value else {
                report(key, field, "must be a mapping of strings")
                continue
            }
            result[name] = scalar.string
        }
        return result
    }

    private func dnsLabel(_ value: String?, _ node: Node?, _ field: String) {
        guard let value else { return }
        let valid = value.count <= 63 && value.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
            && value.first != "-" && value.last != "-"
        if !valid { report(node, field, "must be a lower-case DNS label (a-z, 0-9, '-'; at most 63), got \"\(value)\"") }
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    func read(_ root: Node) -> StaticProxyConfig? {
        if let kind = root.mapping?["kind"]?.string, kind != StaticProxyConfig.kind {
            report(root.mapping?["kind"], "kind", "the first document must be a \(StaticProxyConfig.kind), got \"\(kind)\"")
            return nil
        }
        guard let top = mapping(root, "", allowed: ["apiVersion", "kind", "identity", "clusterDomain", "tls", "services", "metadata"]) else { return nil }
        let apiVersion = string(top["apiVersion"], "apiVersion", parent: root, required: true)
        let kind = string(top["kind"], "kind", parent: root, required: true)
        if let kind, kind != StaticProxyConfig.kind {
            report(top["kind"], "kind", "the first document must be a \(StaticProxyConfig.kind), got \"\(kind)\"")
            return nil
        }
        if let apiVersion, apiVersion != StaticProxyConfig.apiVersion {
            report(top["apiVersion"], "apiVersion", "unknown apiVersion \"\(apiVersion)\" for \(StaticProxyConfig.kind); supported: \(StaticProxyConfig.apiVersion)")
        }
        var config = StaticProxyConfig(identity: nil, tls: nil, services: [], resources: [])
        if let node = top["identity"], let identity = mapping(node, "identity", allowed: ["service", "namespace"]) {
            let name = string(identity["service"], "identity.service", parent: node, required: true)
            let namespace = string(identity["namespace"], "identity.namespace", parent: node, required: false) ?? "default"
            dnsLabel(name, identity["service"], "identity.service")
            dnsLabel(namespace, identity["namespace"], "identity.namespace")
            if let name { config.identity = ServiceKey(name: name, namespace: namespace) }
        }
        if let domain = string(top["clusterDomain"], "clusterDomain", parent: root, required: false) {
            if let problem = ServiceReference.clusterDomainProblem(domain) {
                report(top["clusterDomain"], "clusterDomain", problem)
            } else {
                config.clusterDomain = domain
            }
        }
        if let node = top["tls"], let tls = mapping(node, "tls", allowed: ["caFile", "certFile", "keyFile"]) {
            let ca = string(tls["caFile"], "tls.caFile", parent: node, required: true)
            let cert = string(tls["certFile"], "tls.certFile", parent: node, required: true)
            let key = string(tls["keyFile"], "tls.keyFile", parent: node, required: true)
            if let ca, let cert, let key { config.tls = TLSFiles(caFile: ca, certFile: cert, keyFile: key) }
        }
        if let node = top["services"], node.null == nil {
            guard let list = node.sequence else {
                report(node, "services", "must be a list")
                return config
            }
            var seen: [ServiceKey: Int] = [:]
            for (index, item) in list.enumerated() {
                let field = "services[\(index)]"
                guard let service = mapping(item, field, allowed: ["name", "namespace", "clusterIP", "appProtocol", "endpoints", "labels"]) else { continue }
                var appProtocol = AppProtocol.http
                if let declared = string(service["appProtocol"], "\(field).appProtocol", parent: item, required: false) {
                    if let known = AppProtocol(declared: declared) {
                        appProtocol = known
                    } else {
                        report(service["appProtocol"], "\(field).appProtocol", "must be one of \(AppProtocol.spellings), got \"\(declared)\"")
                    }
                }
                var clusterIP = string(service["clusterIP"], "\(field).clusterIP", parent: item, required: false)
                if let ip = clusterIP, !Self.isIPAddress(ip) {
                    report(service["clusterIP"], "\(field).clusterIP", "must be an IPv4 or IPv6 address, got \"\(ip)\"")
                    clusterIP = nil
                }
                let name = string(service["name"], "\(field).name", parent: item, required: true)
                let namespace = string(service["namespace"], "\(field).namespace", parent: item, required: false) ?? "default"
                dnsLabel(name, service["name"], "\(field).name")
                dnsLabel(namespace, service["namespace"], "\(field).namespace")
                var endpoints: [Endpoint] = []
                if let endpointsNode = service["endpoints"] {
                    if let entries = endpointsNode.sequence {
                        for (endpointIndex, entry) in entries.enumerated() {
                            let endpointField = "\(field).endpoints[\(endpointIndex)]"
                            guard let endpoint = mapping(entry, endpointField, allowed: ["address", "identity", "labels"]) else { continue }
                            guard let address = string(endpoint["address"], "\(endpointField).address", parent: entry, required: true) else { continue }
                            let identity = string(endpoint["identity"], "\(endpointField).identity", parent: entry, required: false)
                            if let identity, !identity.hasPrefix("spiffe://") {
                                report(endpoint["identity"], "\(endpointField).identity", "must be a SPIFFE ID (spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME), got \"\(identity)\"")
                            }
                            switch Endpoint.parseAddress(address) {
                            case .success(let parsed):
                                if parsed.port == 0 {
                                    report(endpoint["address"], "\(endpointField).address", "port 0 cannot be connected to")
                                }
                                endpoints.append(Endpoint(host: parsed.host, port: parsed.port, identity: identity, labels: labels(endpoint["labels"], "\(endpointField).labels")))
                            case .failure(let error):
                                report(endpoint["address"], "\(endpointField).address", error.description)
                            }
                        }
                    } else if endpointsNode.null == nil {
                        report(endpointsNode, "\(field).endpoints", "must be a list")
                    }
                }
                guard let name else { continue }
                let key = ServiceKey(name: name, namespace: namespace)
                if let earlier = seen[key] {
                    report(service["name"], "\(field).name", "service \(namespace)/\(name) is already declared at services[\(earlier)]")
                    continue
                }
                seen[key] = index
                config.services.append(ServiceSpec(key: key, endpoints: endpoints, labels: labels(service["labels"], "\(field).labels"), clusterIP: clusterIP,
                                               appProtocol: appProtocol))
            }
        }
        return config
    }
}
