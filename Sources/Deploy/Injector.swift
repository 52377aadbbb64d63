import Foundation
import Yams

/// What `eino inject` adds to a pod.
public struct InjectionOptions: Sendable {
    public var image: String
    public var control: String
    /// The sidecar as an init container with `restartPolicy: Always` (Kubernetes ≥ 1.29).
    public var nativeSidecar = false
    public var proxyUID = 7102
    public var adminPort = 7191
    public var inboundPort = 7143
    /// Where the image keeps the binary (probes run it directly, without the entrypoint).
    public var binary = "/usr/local/bin/eino"
    /// How the proxy proves who it is to the control plane.
    public var credential = Credential.joinToken

    public enum Credential: Sendable {
        /// A join token from the Secret `eino-join-SERVICE`, the trust anchor from the
        /// ConfigMap `eino-ca` (`eino inject` for a control plane with a file store).
        case joinToken
        /// The pod's own ServiceAccount: a projected token for the identity audience, the
        /// trust anchor from the ConfigMap `eino-trust-anchor` the control plane publishes
        /// (the admission webhook of a control plane on Kubernetes).
        case serviceAccount
    }

    public init(image: String, control: String) {
        self.image = image
        self.control = control
    }
}

public struct InjectionError: Error, CustomStringConvertible {
    public var description: String
}

/// Adds Eino's init container and sidecar to Kubernetes workloads in multi-document YAML.
///
/// Documents are cut at their `---` lines and each is handled on its own: one that is not a
/// workload, that opts out, or that already has exactly what would be added is copied byte
/// for byte, so injecting an injected manifest changes nothing. Changed documents are written
/// again by Yams (their comments are lost).
public enum Injector {
    public static let initName = "eino-init"
    public static let proxyName = "eino-proxy"
    public static let injectAnnotation = "eino.dev/inject"
    public static let serviceAnnotation = "eino.dev/service"
    public static let skipOutboundAnnotation = "eino.dev/skip-outbound-ports"
    public static let skipInboundAnnotation = "eino.dev/skip-inbound-ports"
    /// The pod volumes the sidecar reads: the control plane's trust anchor (ConfigMap
    /// `eino-ca`, key `ca.pem`) and its join token (Secret `eino-join-SERVICE`, key `token`).
    public static let caVolume = "eino-ca"
    public static let joinVolume = "eino-join"
    public static let identityVolume = "eino-identity"
    /// The audience of the projected ServiceAccount token (ControlWire.identityAudience).
    public static let identityAudience = "identity.eino.dev"
    static let caDirectory = "/var/run/eino/ca"
    static let joinDirectory = "/var/run/eino/join"
    static let identityDirectory = "/var/run/secrets/eino.dev/identity"

    public struct Result: Sendable {
        public var output: String
        /// One line per workload left alone on purpose (opted out, host network).
        public var notes: [String]
    }

    public static func inject(_ text: String, source: String, options: InjectionOptions) throws -> Result {
        var output = ""
        var notes: [String] = []
        for document in split(text) {
            let body = document.body
            guard let parsed = try parse(body, source: source, line: document.firstLine) else {
                output += document.separator + body
                continue
            }
            switch try injectDocument(parsed, options: options, where: "\(source):\(document.firstLine)") {
            case .unchanged:
                output += document.separator + body
            case .skipped(let why):
                notes.append(why)
                output += document.separator + body
            case .changed(let node):
                var emitted = try Yams.serialize(node: node, indent: 2, width: -1)
                if !emitted.hasSuffix("\n") { emitted += "\n" }
                output += document.separator + emitted
            }
        }
        return Result(output: output, notes: notes)
    }

    // MARK: Documents

    struct Document {
        var separator: String   // the `---` line with its newline, or "" for the first document
        var body: String
        var firstLine: Int      // 1-based line of the body's start
    }

    /// Cuts at lines that are `---` or start with `--- `; the separators are kept.
    static func split(_ text: String) -> [Document] {
        var documents: [Document] = []
        var current = Document(separator: "", body: "", firstLine: 1)
        var lineNumber = 0
        var index = text.startIndex
        while index < text.endIndex {
            let end = text[index...].firstIndex(of: "\n").map { text.index(after: $0) } ?? text.endIndex
            let line = text[index..<end]
            lineNumber += 1
            let content = line.hasSuffix("\n") ? line.dropLast() : line[...]
            let trimmed = content.hasSuffix("\r") ? content.dropLast() : content
            if trimmed == "---" || trimmed.hasPrefix("--- ") || trimmed.hasPrefix("---\t") {
                if !current.separator.isEmpty || !current.body.isEmpty { documents.append(current) }
                current = Document(separator: String(line), body: "", firstLine: lineNumber + 1)
            } else {
                current.body += line
            }
            index = end
        }
        if !current.separator.isEmpty || !current.body.isEmpty { documents.append(current) }
        return documents
    }

    static func parse(_ body: String, source: String, line: Int) throws -> Node? {
        do {
            return try Yams.compose(yaml: body)
        } catch {
            throw InjectionError(description: "\(source):\(line): not valid YAML: \(error)")
        }
    }

    // MARK: Workloads

    enum Outcome {
        case unchanged
        case skipped(String)
        case changed(Node)
    }

    /// The path from a workload to its pod template (`metadata` and `spec` beside each other).
    static func templatePath(kind: String) -> [String]? {
        switch kind {
        case "Pod": return []
        case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet": return ["spec", "template"]
        case "CronJob": return ["spec", "jobTemplate", "spec", "template"]
        default: return nil
        }
    }

    static func injectDocument(_ document: Node, options: InjectionOptions, where location: String) throws -> Outcome {
        guard case .mapping = document, let kind = document["kind"]?.string, let path = templatePath(kind: kind) else {
            return .unchanged
        }
        let name = document["metadata"]?["name"]?.string ?? "?"
        let described = "\(kind)/\(name)"
        guard let template = node(document, at: path), case .mapping = template, var spec = template["spec"], case .mapping = spec else {
            return .unchanged
        }
        let annotations = template["metadata"]?["annotations"]
        let inject = annotations?[injectAnnotation]?.string?.lowercased()
        if inject == "disabled" || inject == "false" {
            return .skipped("\(described): \(injectAnnotation) is \(inject!), left as it is")
        }
        if spec["hostNetwork"]?.bool == true {
            return .skipped("\(described): hostNetwork pods share the node's network namespace, left as it is")
        }
        var skips: [(flag: String, ports: [String])] = []
        for (annotation, flag) in [(skipOutboundAnnotation, "--skip-outbound-ports"), (skipInboundAnnotation, "--skip-inbound-ports")] {
            guard let value = annotations?[annotation]?.string else { continue }
            guard let ports = InterceptionPlan.parsePorts(value) else {
                throw InjectionError(description: "\(location): \(described): annotation \(annotation): expected comma-separated ports or ranges, got \"\(value)\"")
            }
            if !ports.isEmpty { skips.append((flag, ports)) }
        }
        let podMetadata = template["metadata"]
        let labels = podMetadata?["labels"] ?? document["metadata"]?["labels"]
        let service = annotations?[serviceAnnotation]?.string
            ?? labels?["app.kubernetes.io/name"]?.string
            ?? labels?["app"]?.string
            ?? name

        var initContainers = sequence(spec["initContainers"]).filter { !isEino($0) }
        var containers = sequence(spec["containers"]).filter { !isEino($0) }
        let appPort = containers.lazy.compactMap { $0["ports"]?.sequence?.first?["containerPort"]?.int }.first
        let initContainer = makeInitContainer(options: options, skips: skips)
        let proxy = makeProxy(options: options, service: service, appPort: appPort)
        if options.nativeSidecar {
            initContainers = [initContainer, proxy] + initContainers
        } else {
            // Last among the init containers, so the others run before interception starts.
            initContainers.append(initContainer)
            containers.insert(proxy, at: 0)
        }
        spec["initContainers"] = .sequence(.init(initContainers))
        spec["containers"] = .sequence(.init(containers))
        let volumes = sequence(spec["volumes"]).filter { ![caVolume, joinVolume, identityVolume].contains($0["name"]?.string) }
        switch options.credential {
        case .joinToken:
            spec["volumes"] = .sequence(.init(volumes + [
                map([("name", str(caVolume)), ("configMap", map([("name", str("eino-ca"))]))]),
                map([("name", str(joinVolume)), ("secret", map([("secretName", str("eino-join-\(service)"))]))]),
            ]))
        case .serviceAccount:
            let token = map([("serviceAccountToken", map([
                ("audience", str(identityAudience)), ("expirationSeconds", int(86400)), ("path", str("token")),
            ]))])
            spec["volumes"] = .sequence(.init(volumes + [
                map([("name", str(caVolume)), ("configMap", map([("name", str("eino-trust-anchor"))]))]),
                map([("name", str(identityVolume)), ("projected", map([("sources", .sequence(.init([token])))]))]),
            ]))
        }
        var updatedTemplate = template
        updatedTemplate["spec"] = spec
        let updated = replacing(document, at: path, with: updatedTemplate)
        return updated == document ? .unchanged : .changed(updated)
    }

    static func isEino(_ container: Node) -> Bool {
        let name = container["name"]?.string
        return name == initName || name == proxyName
    }

    static func sequence(_ node: Node?) -> [Node] {
        node?.sequence.map(Array.init) ?? []
    }

    static func node(_ root: Node, at path: [String]) -> Node? {
        path.reduce(Optional(root)) { $0?[$1] }
    }

    static func replacing(_ root: Node, at path: [String], with value: Node) -> Node {
        guard let first = path.first else { return value }
        var copy = root
        copy[first] = replacing(root[first] ?? [:], at: Array(path.dropFirst()), with: value)
        return copy
    }

    // MARK: Containers

    /// A string, quoted when it would otherwise read back as a number, boolean or null.
    static func str(_ text: String) -> Node {
        let lower = text.lowercased()
        let ambiguous = Int(text) != nil || Double(text) != nil || text.isEmpty
            || ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"].contains(lower)
        return Node(text, Tag(.str), ambiguous ? .doubleQuoted : .any)
    }
    static func int(_ value: Int) -> Node { Node(String(value), Tag(.int)) }
    static func bool(_ value: Bool) -> Node { Node(value ? "true" : "false", Tag(.bool)) }
    static func strings(_ items: [String]) -> Node { .sequence(.init(items.map(str))) }
    static func map(_ pairs: [(String, Node)]) -> Node { .mapping(.init(pairs.map { (str($0.0), $0.1) })) }

    static func makeInitContainer(options: InjectionOptions, skips: [(flag: String, ports: [String])]) -> Node {
        var arguments = ["init", "--proxy-uid", String(options.proxyUID), "--admin-port", String(options.adminPort)]
        for skip in skips { arguments += [skip.flag, skip.ports.joined(separator: ",")] }
        return map([
            ("name", str(initName)),
            ("image", str(options.image)),
            ("args", strings(arguments)),
            ("securityContext", map([
                ("runAsUser", int(0)),
                ("runAsNonRoot", bool(false)),
                ("allowPrivilegeEscalation", bool(false)),
                ("capabilities", map([("add", strings(["NET_ADMIN", "NET_RAW"])), ("drop", strings(["ALL"]))])),
            ])),
        ])
    }

    static func makeProxy(options: InjectionOptions, service: String, appPort: Int?) -> Node {
        // With ServiceAccount identity the proxy is its ServiceAccount, whatever it serves.
        let (name, credential) = switch options.credential {
        case .joinToken: (service, ["--join-token-file", "\(joinDirectory)/token"])
        case .serviceAccount: ("$(POD_SERVICE_ACCOUNT)", ["--identity-token-file", "\(identityDirectory)/token"])
        }
        var arguments = ["proxy", "--control", options.control, "--service", name, "--namespace", "$(POD_NAMESPACE)",
                         "--ca-file", "\(caDirectory)/ca.pem"] + credential + ["--advertise", "$(POD_IP):\(options.inboundPort)"]
        if let appPort { arguments += ["--app", "127.0.0.1:\(appPort)"] }
        func field(_ name: String, _ path: String) -> Node {
            map([("name", str(name)), ("valueFrom", map([("fieldRef", map([("fieldPath", str(path))]))]))])
        }
        func waitReady(_ extra: [String]) -> Node {
            map([("command", strings([options.binary, "wait-ready", "--admin", "127.0.0.1:\(options.adminPort)"] + extra))])
        }
        var pairs: [(String, Node)] = [
            ("name", str(proxyName)),
            ("image", str(options.image)),
            ("args", strings(arguments)),
            ("env", .sequence(.init([
                field("POD_NAME", "metadata.name"),
                field("POD_NAMESPACE", "metadata.namespace"),
                field("POD_SERVICE_ACCOUNT", "spec.serviceAccountName"),
                field("POD_IP", "status.podIP"),
            ]))),
            ("volumeMounts", .sequence(.init([
                map([("name", str(caVolume)), ("mountPath", str(caDirectory)), ("readOnly", bool(true))]),
                options.credential == .joinToken
                    ? map([("name", str(joinVolume)), ("mountPath", str(joinDirectory)), ("readOnly", bool(true))])
                    : map([("name", str(identityVolume)), ("mountPath", str(identityDirectory)), ("readOnly", bool(true))]),
            ]))),
            ("securityContext", map([
                ("runAsUser", int(options.proxyUID)),
                ("runAsGroup", int(options.proxyUID)),
                ("runAsNonRoot", bool(true)),
                ("allowPrivilegeEscalation", bool(false)),
                ("readOnlyRootFilesystem", bool(true)),
                ("capabilities", map([("drop", strings(["ALL"]))])),
            ])),
            // The admin listener stays on loopback (it serves /config and POST /shutdown), so
            // the probes run `eino wait-ready` inside the container instead of an httpGet.
            ("readinessProbe", map([
                ("exec", waitReady(["--timeout", "1s"])),
                ("periodSeconds", int(5)), ("timeoutSeconds", int(3)),
            ])),
            ("livenessProbe", map([
                ("exec", waitReady(["--path", "/live", "--timeout", "1s"])),
                ("periodSeconds", int(10)), ("timeoutSeconds", int(3)), ("failureThreshold", int(3)),
            ])),
        ]
        if options.nativeSidecar {
            // The kubelet starts the next container once this probe passes: apps start after the proxy is ready.
            pairs.append(("startupProbe", map([
                ("exec", waitReady(["--timeout", "1s"])),
                ("periodSeconds", int(1)), ("timeoutSeconds", int(3)), ("failureThreshold", int(60)),
            ])))
            pairs.append(("restartPolicy", str("Always")))
        } else {
            // The kubelet starts the app containers only after this hook returns.
            pairs.append(("lifecycle", map([("postStart", map([("exec", waitReady(["--timeout", "60s"]))]))])))
        }
        return map(pairs)
    }
}
