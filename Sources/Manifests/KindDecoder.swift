/// Decodes the body of each kind, in any supported version, into its one model.
///
/// Every method reports each problem it finds and still returns a model (with placeholder
/// values where a field was wrong): the caller treats any reported problem as fatal for
/// the document, and reading on finds the next problem too.
struct KindDecoder {
    struct Version {
        /// The N of v1alphaN.
        var number: Int
    }

    typealias Budget = DocumentProblems.BudgetExhausted

    let version: Version
    /// The resource's namespace: default for subjects that name none.
    let namespace: String
    /// What the fully qualified spelling of a service reference ends in.
    let clusterDomain: String

    // MARK: TrafficSplit

    func trafficSplit(_ top: inout MappingReader) throws(Budget) -> TrafficSplit? {
        guard var spec = try top.require("spec")?.mapping() else { return nil }
        let root = spec.require("service").map(referenceName(serviceName)) ?? ""
        var backends: [TrafficSplit.Backend] = []
        var allWeightsValid = true
        if let listField = spec.require("backends"), let list = try listField.sequence() {
            if list.isEmpty { listField.report("must list at least one backend") }
            var seen: [String: String] = [:]
            for item in list {
                guard var backend = try item.mapping() else { continue }
                let serviceField = backend.require("service")
                let service = serviceField.map(serviceName) ?? ""
                let weight = backend.require("weight").flatMap(version.number == 1 ? quantityWeight : integerWeight)
                backend.reportUnknown()
                if weight == nil { allWeightsValid = false }
                guard let serviceField, !service.isEmpty else { continue }
                if service == root {
                    serviceField.report("backend \"\(service)\" is the root service itself; backends must be other services")
                } else if let first = seen[service] {
                    serviceField.report("duplicate backend \"\(service)\" (also \(first))")
                } else {
                    seen[service] = serviceField.path
                }
                backends.append(.init(service: service, weight: weight ?? 0))
            }
            if allWeightsValid, !list.isEmpty, backends.allSatisfy({ $0.weight == 0 }) {
                listField.report("every weight is 0; at least one backend needs a positive weight")
            }
        }
        let matches = version.number >= 3 ? try routeReferences(&spec) : []
        spec.reportUnknown()
        return TrafficSplit(service: root, backends: backends, matches: matches)
    }

    private func quantityWeight(_ field: Field) -> UInt64? {
        guard case .scalar(let scalar) = field.node, [.int, .float, .str].contains(field.node.tagName) else {
            field.report("expected a quantity such as 1, 500m or 10m, got \(field.typeDescription)")
            return nil
        }
        do {
            return try Quantity.milliUnits(scalar.string)
        } catch {
            switch error {
            case .malformed: field.report("invalid quantity \"\(scalar.string)\"; expected a number with an optional suffix, such as 1, 500m or 10m")
            case .negative: field.report("must not be negative, got \(scalar.string)")
            case .finerThanMilli: field.report("quantity \"\(scalar.string)\" is finer than 1m")
            case .tooLarge: field.report("must be at most \(Quantity.maxMilli)m, got \(scalar.string)")
            }
            return nil
        }
    }

    private func integerWeight(_ field: Field) -> UInt64? {
        guard let value = field.integer() else { return nil }
        guard value >= 0 else {
            field.report("must not be negative, got \(value)")
            return nil
        }
        guard value <= Int(Int32.max) else {
            field.report("must be at most \(Int32.max), got \(value)")
            return nil
        }
        return UInt64(value)
    }

    /// `spec.matches` of a split or mirror: route groups in the same namespace.
    private func routeReferences(_ spec: inout MappingReader) throws(Budget) -> [RouteReference] {
        guard let list = try spec.take("matches")?.sequence() else { return [] }
        var references: [RouteReference] = []
        for item in list {
            guard var reference = try item.mapping() else { continue }
            if let kindField = reference.require("kind"), let kind = kindField.string(), kind != ResourceKind.httpRouteGroup.rawValue {
                kindField.report("must be HTTPRouteGroup, got \"\(kind)\"")
            }
            if let groupField = reference.take("apiGroup"), let group = groupField.string(), group != ResourceKind.httpRouteGroup.group {
                groupField.report("must be \(ResourceKind.httpRouteGroup.group), got \"\(group)\"")
            }
            let name = reference.require("name").map(referenceName(objectName)) ?? ""
            reference.reportUnknown()
            let resolved = RouteReference(kind: .httpRouteGroup, name: name)
            if references.contains(resolved) {
                item.report("duplicate match HTTPRouteGroup \"\(name)\"")
            }
            references.append(resolved)
        }
        return references
    }

    // MARK: HTTPRouteGroup and TCPRoute

    func httpRouteGroup(_ top: inout MappingReader) throws(Budget) -> HTTPRouteGroup? {
        // v1alpha1 and v1alpha2 keep `matches` at the top level; later versions under `spec`.
        if version.number <= 2 { return try httpMatches(&top) }
        guard var spec = try top.require("spec")?.mapping() else { return nil }
        defer { spec.reportUnknown() }
        return try httpMatches(&spec)
    }

    private func httpMatches(_ reader: inout MappingReader) throws(Budget) -> HTTPRouteGroup {
        var matches: [HTTPRouteGroup.Match] = []
        if let listField = reader.require("matches"), let list = try listField.sequence() {
            if list.isEmpty { listField.report("must list at least one match") }
            for item in list {
                guard let match = try httpMatch(item) else { continue }
                if !match.name.isEmpty, matches.contains(where: { $0.name == match.name }) {
                    item.report("duplicate match name \"\(match.name)\"")
                }
                matches.append(match)
            }
        }
        return HTTPRouteGroup(matches: matches)
    }

    private func httpMatch(_ item: Field) throws(Budget) -> HTTPRouteGroup.Match? {
        guard var reader = try item.mapping() else { return nil }
        let name = reader.require("name")?.nonEmptyString() ?? ""
        var pathRegex: String?
        if let field = reader.take("pathRegex"), let pattern = field.string() {
            try compile(pattern, field)
            pathRegex = pattern
        }
        var methods: [String] = []
        if let list = try reader.take("methods")?.sequence() {
            for methodField in list {
                guard let method = methodField.string() else { continue }
                if method != "*", !Names.httpMethods.contains(method) {
                    methodField.report("unknown HTTP method \"\(method)\"; use one of \(Names.httpMethods.joined(separator: ", ")) or *")
                }
                if !methods.contains(method) { methods.append(method) }
            }
        }
        var headers: [HTTPRouteGroup.Header] = []
        if version.number >= 2, let headersField = reader.take("headers") {
            for (name, pattern, field) in try headerPairs(headersField) {
                if !Names.isHeaderName(name) {
                    field.report("\"\(name)\" is not a valid HTTP header name")
                }
                try compile(pattern, field)
                headers.append(.init(name: name.lowercased(), valueRegex: pattern))
            }
        }
        reader.reportUnknown()
        return .init(name: name, pathRegex: pathRegex, methods: methods.contains("*") ? [] : methods, headers: headers)
    }

    /// Headers as the SDK defines them (a mapping), or as many published examples write
    /// them (a list of one-entry mappings); both mean the same AND-ed conditions.
    private func headerPairs(_ field: Field) throws(Budget) -> [(String, String, Field)] {
        if case .sequence = field.node {
            var pairs: [(String, String, Field)] = []
            for item in try field.sequence() ?? [] {
                pairs += try item.stringPairs()?.map { ($0.key, $0.value, $0.field) } ?? []
            }
            return pairs
        }
        return try field.stringPairs()?.map { ($0.key, $0.value, $0.field) } ?? []
    }

    private func compile(_ pattern: String, _ field: Field) throws(Budget) {
        try field.problems.spend(50, line: field.line)
        do {
            _ = try Regex(pattern)
        } catch {
            field.report("invalid regular expression \"\(pattern)\": \(error)")
        }
    }

    func tcpRoute(_ top: inout MappingReader) throws(Budget) -> TCPRoute? {
        guard let specField = top.take("spec") else { return TCPRoute() }
        guard var spec = try specField.mapping() else { return nil }
        var ports: [Int] = []
        if version.number >= 4, var matches = try spec.take("matches")?.mapping() {
            _ = matches.take("name")?.string()
            for portField in try matches.take("ports")?.sequence() ?? [] {
                guard let port = port(portField) else { continue }
                if ports.contains(port) { portField.report("duplicate port \(port)") }
                ports.append(port)
            }
            matches.reportUnknown()
        }
        spec.reportUnknown()
        return TCPRoute(ports: ports)
    }

    private func port(_ field: Field) -> Int? {
        guard let value = field.integer() else { return nil }
        guard (1...65535).contains(value) else {
            field.report("must be a port between 1 and 65535, got \(value)")
            return nil
        }
        return value
    }

    // MARK: TrafficTarget

    func trafficTarget(_ top: inout MappingReader) throws(Budget) -> TrafficTarget? {
        guard var spec = try top.require("spec")?.mapping() else { return nil }
        let destination = try spec.require("destination").map { field throws(Budget) in try subject(field, allowPort: true) }
        var sources: [TrafficTarget.Subject] = []
        if let listField = spec.require("sources"), let list = try listField.sequence() {
            if list.isEmpty { listField.report("must list at least one source") }
            for item in list {
                let source = try subject(item, allowPort: false)
                if sources.contains(source) { item.report("duplicate source \(source.namespace)/\(source.name)") }
                sources.append(source)
            }
        }
        var rules: [TrafficTarget.Rule] = []
        if let listField = spec.require("rules"), let list = try listField.sequence() {
            if list.isEmpty { listField.report("must list at least one rule") }
            for item in list {
                guard var reader = try item.mapping() else { continue }
                var kind = ResourceKind.httpRouteGroup
                if let kindField = reader.require("kind"), let value = kindField.string() {
                    switch value {
                    case ResourceKind.httpRouteGroup.rawValue: kind = .httpRouteGroup
                    case ResourceKind.tcpRoute.rawValue: kind = .tcpRoute
                    default: kindField.report("must be HTTPRouteGroup or TCPRoute, got \"\(value)\"")
                    }
                }
                let name = reader.require("name").map(referenceName(objectName)) ?? ""
                var matchNames: [String] = []
                if let matchesField = reader.take("matches") {
                    if kind == .tcpRoute {
                        matchesField.report("only HTTPRouteGroup rules select matches by name")
                    } else {
                        matchNames = try matchesField.sequence()?.compactMap(referenceName { $0.nonEmptyString() ?? "" }) ?? []
                    }
                }
                reader.reportUnknown()
                rules.append(.init(kind: kind, name: name, matches: matchNames))
            }
        }
        spec.reportUnknown()
        return TrafficTarget(destination: destination ?? .init(name: "", namespace: namespace), sources: sources, rules: rules)
    }

    private func subject(_ field: Field, allowPort: Bool) throws(Budget) -> TrafficTarget.Subject {
        guard var reader = try field.mapping() else { return .init(name: "", namespace: namespace) }
        if let kindField = reader.require("kind"), let kind = kindField.string(), kind != "ServiceAccount" {
            kindField.report("must be ServiceAccount, got \"\(kind)\"")
        }
        let name = reader.require("name").map(objectName) ?? ""
        var subjectNamespace = namespace
        if let namespaceField = reader.take("namespace"), let value = namespaceField.string() {
            if let problem = Names.dns1123LabelProblem(value) { namespaceField.report(problem) }
            subjectNamespace = value
        }
        var port: Int?
        if allowPort, let portField = reader.take("port") { port = self.port(portField) }
        reader.reportUnknown()
        return .init(name: name, namespace: subjectNamespace, port: port)
    }

    // MARK: TrafficMirror

    func trafficMirror(_ top: inout MappingReader) throws(Budget) -> TrafficMirror? {
        guard var spec = try top.require("spec")?.mapping() else { return nil }
        let root = spec.require("service").map(referenceName(serviceName)) ?? ""
        let matches = try routeReferences(&spec)
        var mirrors: [TrafficMirror.Mirror] = []
        if let listField = spec.require("mirrors"), let list = try listField.sequence() {
            if list.isEmpty { listField.report("must list at least one mirror") }
            for item in list {
                guard var reader = try item.mapping() else { continue }
                let serviceField = reader.require("service")
                let service = serviceField.map(serviceName) ?? ""
                var percent = 0.0
                if let percentField = reader.require("percent"), let value = percentField.number() {
                    if !(0...100).contains(value) {
                        percentField.report("must be between 0 and 100, got \(percentField.node.scalar?.string ?? "")")
                    }
                    percent = value
                }
                reader.reportUnknown()
                if let serviceField, !service.isEmpty {
                    if service == root {
                        serviceField.report("mirror \"\(service)\" is the root service itself; mirror to another service")
                    } else if mirrors.contains(where: { $0.service == service }) {
                        serviceField.report("duplicate mirror \"\(service)\"")
                    }
                }
                mirrors.append(.init(service: service, percent: percent))
            }
        }
        let compare = try spec.take("compare").map { field throws(Budget) in try self.compare(field) }
        spec.reportUnknown()
        return TrafficMirror(service: root, matches: matches, mirrors: mirrors, compare: compare)
    }

    private func compare(_ field: Field) throws(Budget) -> TrafficMirror.Compare {
        var result = TrafficMirror.Compare()
        guard var reader = try field.mapping() else { return result }
        for headerField in try reader.take("ignoreHeaders")?.sequence() ?? [] {
            guard let name = headerField.string() else { continue }
            if !Names.isHeaderName(name) { headerField.report("\"\(name)\" is not a valid HTTP header name") }
            result.ignoreHeaders.append(name.lowercased())
        }
        for pathField in try reader.take("ignoreJSONPaths")?.sequence() ?? [] {
            guard let path = pathField.string() else { continue }
            if let problem = JSONPath.problem(path) { pathField.report(problem) }
            result.ignoreJSONPaths.append(path)
        }
        if let sizeField = reader.take("maxBodyBytes"), let size = sizeField.integer() {
            let limit = TrafficMirror.Compare.maxBodyBytesLimit
            if !(0...limit).contains(size) {
                sizeField.report("must be between 0 and \(limit), got \(size)")
            }
            result.maxBodyBytes = size
        }
        reader.reportUnknown()
        return result
    }

    // MARK: Names

    /// Reads a name that points at another resource, remembering its line for the
    /// cross-document checks that run after decoding.
    private func referenceName(_ read: @escaping (Field) -> String) -> (Field) -> String {
        { field in
            field.problems.recordLine(of: field)
            return read(field)
        }
    }

    /// A service reference in any of its spellings (``ServiceReference``), as its short name.
    private func serviceName(_ field: Field) -> String {
        guard let text = field.string() else { return "" }
        switch ServiceReference.shortName(text, namespace: namespace, clusterDomain: clusterDomain) {
        case .success(let name): return name
        case .failure(let problem):
            field.report(problem.description)
            return text
        }
    }

    private func objectName(_ field: Field) -> String {
        guard let name = field.string() else { return "" }
        if let problem = Names.dns1123SubdomainProblem(name) { field.report(problem) }
        return name
    }
}
