import Yams

/// What one YAML stream (a file, stdin, an API body) decoded into.
public struct DecodedManifests: Sendable {
    public enum Document: Sendable {
        case resource(Resource)
        case invalid([ManifestProblem])
        /// A document holding nothing (`---` alone, comments only): skipped, as kubectl does.
        case empty
    }

    public var documents: [Document] = []
    /// Problems that belong to the stream rather than one document (syntax, encoding, size).
    public var streamProblems: [ManifestProblem] = []

    public var resources: [Resource] {
        documents.compactMap { if case .resource(let resource) = $0 { resource } else { nil } }
    }

    public var problems: [ManifestProblem] {
        var all: [ManifestProblem] = []
        for case .invalid(let problems) in documents { all += problems }
        return all + streamProblems
    }
}

/// Decodes multi-document YAML into typed resources, reporting every problem it can find
/// with its line, so one run tells the user everything to fix.
public enum ManifestDecoder {
    /// Manifests are small; anything larger is a mistake or an attack.
    public static let maxStreamBytes = 4 << 20

    /// `clusterDomain`: what a fully qualified service reference ends in (``ServiceReference``).
    public static func decode(bytes: [UInt8], file: String, clusterDomain: String = ServiceReference.defaultClusterDomain) -> DecodedManifests {
        guard bytes.count <= maxStreamBytes else {
            return streamFailure(file: file, line: 1, "larger than \(maxStreamBytes >> 20) MiB")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return streamFailure(file: file, line: lineOfFirstInvalidUTF8(bytes), "not valid UTF-8")
        }
        return decode(text, file: file, clusterDomain: clusterDomain)
    }

    /// The YAML parser for manifests and the static config. `Resolver.basic`: plain scalars
    /// keep their implicit tag and `ScalarTag` resolves them, so Yams's regular expressions
    /// (and ICU behind them) never load. UTF-8: the text was checked as UTF-8, and Yams would
    /// otherwise read the environment to choose.
    public static func yamlParser(_ text: String) throws -> Parser {
        try Parser(yaml: text, resolver: .basic, encoding: .utf8)
    }

    public static func decode(_ text: String, file: String, clusterDomain: String = ServiceReference.defaultClusterDomain) -> DecodedManifests {
        var result = DecodedManifests()
        guard text.utf8.count <= maxStreamBytes else {
            return streamFailure(file: file, line: 1, "larger than \(maxStreamBytes >> 20) MiB")
        }
        do {
            let parser = try yamlParser(text)
            while let root = try parser.nextRoot() {
                let index = result.documents.count + 1
                result.documents.append(decodeDocument(root, file: file, index: index, clusterDomain: clusterDomain))
            }
        } catch {
            let (line, message) = describe(error, text: text)
            result.streamProblems.append(ManifestProblem(
                file: file, line: line, resource: "document \(result.documents.count + 1)",
                field: "(yaml)", message: message))
        }
        return result
    }

    private static func streamFailure(file: String, line: Int, _ message: String) -> DecodedManifests {
        var result = DecodedManifests()
        result.streamProblems = [ManifestProblem(file: file, line: line, resource: "document 1", field: "(file)", message: message)]
        return result
    }

    private static func lineOfFirstInvalidUTF8(_ bytes: [UInt8]) -> Int {
        var line = 1
        var lineStart = 0
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
            if String(validating: bytes[lineStart..<index], as: UTF8.self) == nil { return line }
            line += 1
            lineStart = index + 1
        }
        return line
    }

    /// One line for a YAML error, without the snippet Yams appends.
    private static func describe(_ error: any Error, text: String) -> (line: Int, message: String) {
        guard let yamlError = error as? YamlError else { return (1, "\(error)") }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            if let context {
                return (mark.line, "\(problem) (\(context.text) at line \(context.mark.line))")
            }
            return (mark.line, problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
            return (context.mark.line, "duplicate key \(keys) in one mapping")
        case .reader(let problem, let offset, _, _):
            let line = offset.map { text.prefix($0).reduce(1) { $1 == "\n" ? $0 + 1 : $0 } } ?? 1
            return (line, problem)
        default:
            return (1, "\(yamlError)")
        }
    }

    static func decodeDocument(_ root: Node, file: String, index: Int, clusterDomain: String) -> DecodedManifests.Document {
        if case .scalar = root, root.tagName == .null { return .empty }
        let problems = DocumentProblems()
        var label = "document \(index)"
        let line = root.mark?.line ?? 1
        let resource = try? decodeResource(
            Field(node: root, path: "", line: line, problems: problems), file: file, clusterDomain: clusterDomain, label: &label)
        if problems.entries.isEmpty, let resource { return .resource(resource) }
        return .invalid(problems.entries.map {
            ManifestProblem(file: file, line: $0.line, resource: label, field: $0.field, message: $0.message)
        })
    }

    private static func decodeResource(_ root: Field, file: String, clusterDomain: String, label: inout String) throws(DocumentProblems.BudgetExhausted) -> Resource? {
        guard var top = try root.mapping() else { return nil }
        let apiVersionField = top.require("apiVersion")
        let kindField = top.require("kind")
        guard let apiVersion = apiVersionField?.nonEmptyString(), let kindName = kindField?.nonEmptyString(),
              let apiVersionField, let kindField
        else { return nil }
        guard let kind = ResourceKind(rawValue: kindName) else {
            label = peekLabel(kindName, root)
            let known = ResourceKind.allCases.map(\.rawValue).joined(separator: ", ")
            kindField.report("unknown kind \"\(kindName)\"; Eino understands \(known)")
            return nil
        }
        guard let versionIndex = kind.apiVersions.firstIndex(of: apiVersion) else {
            label = peekLabel(kindName, root)
            let known = kind.apiVersions.joined(separator: ", ")
            apiVersionField.report("unknown apiVersion \"\(apiVersion)\" for \(kind.rawValue); supported: \(known)")
            return nil
        }
        let version = KindDecoder.Version(number: Int(kind.versions[versionIndex].dropFirst("v1alpha".count))!)

        let metadata = try decodeMetadata(top.require("metadata")) ?? ObjectMeta(name: "")
        label = "\(kind.rawValue)/\(metadata.namespace)/\(metadata.name.isEmpty ? "<no name>" : metadata.name)"
        let decoder = KindDecoder(version: version, namespace: metadata.namespace, clusterDomain: clusterDomain)
        let spec: Resource.Spec?
        switch kind {
        case .trafficSplit: spec = try decoder.trafficSplit(&top).map(Resource.Spec.trafficSplit)
        case .httpRouteGroup: spec = try decoder.httpRouteGroup(&top).map(Resource.Spec.httpRouteGroup)
        case .tcpRoute: spec = try decoder.tcpRoute(&top).map(Resource.Spec.tcpRoute)
        case .trafficTarget: spec = try decoder.trafficTarget(&top).map(Resource.Spec.trafficTarget)
        case .trafficMirror: spec = try decoder.trafficMirror(&top).map(Resource.Spec.trafficMirror)
        }
        top.ignore("status")
        top.reportUnknown()
        guard let spec else { return nil }
        return Resource(apiVersion: apiVersion, metadata: metadata, spec: spec,
                        source: SourceLocation(file: file, line: root.line, referenceLines: root.problems.referenceLines))
    }

    /// `Kind/namespace/name` for a document whose schema is unknown, read without judging it.
    private static func peekLabel(_ kind: String, _ root: Field) -> String {
        let metadata = root.node.mapping?["metadata"]?.mapping
        let name = metadata?["name"]?.string ?? "<no name>"
        let namespace = metadata?["namespace"]?.string ?? "default"
        return "\(kind)/\(namespace)/\(name)"
    }

    /// Fields Kubernetes fills in; accepted so that `kubectl get -o yaml` output can be applied.
    private static let serverSetMetadata = [
        "uid", "creationTimestamp", "generation", "managedFields", "ownerReferences", "finalizers",
        "generateName", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
    ]

    private static func decodeMetadata(_ field: Field?) throws(DocumentProblems.BudgetExhausted) -> ObjectMeta? {
        guard let field, var reader = try field.mapping() else { return nil }
        // Invalid values are reported and replaced by placeholders: any problem already
        // makes the document invalid, and the name is still wanted for the messages.
        var name = ""
        if let nameField = reader.require("name"), let value = nameField.string() {
            if let problem = Names.dns1123SubdomainProblem(value) { nameField.report(problem) }
            name = value
        }
        var namespace = "default"
        if let namespaceField = reader.take("namespace"), let value = namespaceField.string() {
            if let problem = Names.dns1123LabelProblem(value) { namespaceField.report(problem) }
            namespace = value
        }
        var labels: [String: String] = [:]
        for (key, value, _) in try reader.take("labels")?.stringPairs() ?? [] { labels[key] = value }
        var annotations: [String: String] = [:]
        for (key, value, _) in try reader.take("annotations")?.stringPairs() ?? [] { annotations[key] = value }
        let resourceVersion = reader.take("resourceVersion")?.string()
        for key in serverSetMetadata { reader.ignore(key) }
        reader.reportUnknown()
        return ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations,
                          resourceVersion: resourceVersion)
    }
}
