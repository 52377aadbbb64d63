import Yams

/// Problems found while reading one document, before the resource's name is known.
///
/// Also carries a work budget: YAML aliases let a small document describe a huge tree,
/// and the decoder must stay cheap on hostile input.
final class DocumentProblems {
    struct Entry {
        var line: Int
        var field: String
        var message: String
    }

    struct BudgetExhausted: Error {}

    private(set) var entries: [Entry] = []
    /// Lines of reference fields, kept for problems found later across documents.
    private(set) var referenceLines: [String: Int] = [:]
    private var budget: Int

    init(budget: Int = 200_000) {
        self.budget = budget
    }

    func recordLine(of field: Field) {
        referenceLines[field.path] = field.line
    }

    func report(_ line: Int, _ field: String, _ message: String) {
        entries.append(Entry(line: line, field: field, message: message))
    }

    /// Spends `cost` units of work; throws once the document has cost too much.
    func spend(_ cost: Int = 1, line: Int) throws(BudgetExhausted) {
        budget -= cost
        if budget < 0 {
            report(line, "(document)", "document too large to decode (aliases expand to too many nodes)")
            throw BudgetExhausted()
        }
    }
}

/// A YAML node with its field path and the line to blame for it.
struct Field {
    let node: Node
    let path: String
    let line: Int
    let problems: DocumentProblems

    func child(_ key: String, node: Node, line: Int) -> Field {
        Field(node: node, path: path.isEmpty ? key : "\(path).\(key)", line: line, problems: problems)
    }

    func report(_ message: String) {
        problems.report(line, path.isEmpty ? "(document)" : path, message)
    }

    var isNull: Bool {
        if case .scalar = node { return node.tagName == .null }
        return false
    }

    /// What the node is, in the words of an error message, with its value when short.
    var typeDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            let text = scalar.string.count <= 40 ? scalar.string : String(scalar.string.prefix(40)) + "…"
            switch node.tagName {
            case .int: return "an integer (\(text))"
            case .float: return "a number (\(text))"
            case .bool: return "a boolean (\(text))"
            case .null: return "null"
            case .str: return "a string (\"\(text)\")"
            default: return "a \(node.tagName.rawValue) value (\(text))"
            }
        }
    }

    func string() -> String? {
        guard case .scalar(let scalar) = node, node.tagName == .str else {
            report("expected a string, got \(typeDescription)")
            return nil
        }
        return scalar.string
    }

    /// A string that must not be empty.
    func nonEmptyString() -> String? {
        guard let value = string() else { return nil }
        if value.isEmpty {
            report("must not be empty")
            return nil
        }
        return value
    }

    func integer() -> Int? {
        guard case .scalar = node, node.tagName == .int, let value = node.int else {
            if node.tagName == .float {
                report("must be an integer, got \(node.scalar?.string ?? "")")
            } else {
                report("expected an integer, got \(typeDescription)")
            }
            return nil
        }
        return value
    }

    func number() -> Double? {
        guard case .scalar = node, node.tagName == .int || node.tagName == .float,
              let value = node.float, value.isFinite
        else {
            report("expected a number, got \(typeDescription)")
            return nil
        }
        return value
    }

    func sequence() throws(DocumentProblems.BudgetExhausted) -> [Field]? {
        guard case .sequence(let items) = node else {
            report("expected a list, got \(typeDescription)")
            return nil
        }
        var fields: [Field] = []
        fields.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            try problems.spend(line: line)
            fields.append(Field(node: item, path: "\(path)[\(index)]", line: item.mark?.line ?? line, problems: problems))
        }
        return fields
    }

    func mapping() throws(DocumentProblems.BudgetExhausted) -> MappingReader? {
        try MappingReader(self)
    }

    /// A list of strings; items of another type are reported and skipped.
    func strings() throws(DocumentProblems.BudgetExhausted) -> [String]? {
        try sequence()?.compactMap { $0.string() }
    }

    /// A mapping of string to string, in document order.
    func stringPairs() throws(DocumentProblems.BudgetExhausted) -> [(key: String, value: String, field: Field)]? {
        guard var reader = try mapping() else { return nil }
        return reader.takeAll().compactMap { key, field in
            field.string().map { (key, $0, field) }
        }
    }
}

/// Reads a YAML mapping field by field, then reports whatever nobody asked for:
/// unknown fields are errors, as with `kubectl apply --validate=strict`.
struct MappingReader {
    let field: Field
    private var entries: [(key: String, line: Int, value: Node)] = []
    private var taken: Set<String> = []

    init?(_ field: Field) throws(DocumentProblems.BudgetExhausted) {
        guard case .mapping(let mapping) = field.node else {
            field.report("expected a mapping, got \(field.typeDescription)")
            return nil
        }
        self.field = field
        var seen: Set<String> = []
        for (key, value) in mapping {
            let line = key.mark?.line ?? field.line
            try field.problems.spend(line: line)
            guard case .scalar(let scalar) = key, key.tagName != .null else {
                field.problems.report(line, field.path.isEmpty ? "(document)" : field.path, "keys must be strings")
                continue
            }
            guard seen.insert(scalar.string).inserted else {
                let path = field.path.isEmpty ? scalar.string : "\(field.path).\(scalar.string)"
                field.problems.report(line, path, "duplicate key")
                continue
            }
            entries.append((scalar.string, line, value))
        }
    }

    /// The field under `key`, or nil when it is absent or null.
    mutating func take(_ key: String) -> Field? {
        taken.insert(key)
        guard let entry = entries.first(where: { $0.key == key }) else { return nil }
        let child = field.child(key, node: entry.value, line: entry.line)
        return child.isNull ? nil : child
    }

    /// Like `take`, but reports the field as missing.
    mutating func require(_ key: String) -> Field? {
        if let child = take(key) { return child }
        field.problems.report(field.line, field.path.isEmpty ? key : "\(field.path).\(key)", "required field is missing")
        return nil
    }

    /// Every entry, all counted as known.
    mutating func takeAll() -> [(key: String, field: Field)] {
        entries.map { entry in
            taken.insert(entry.key)
            return (entry.key, field.child(entry.key, node: entry.value, line: entry.line))
        }
    }

    /// Marks fields that are accepted and ignored (Kubernetes bookkeeping, `status`).
    mutating func ignore(_ keys: String...) {
        taken.formUnion(keys)
    }

    /// Reports every field that was never taken.
    func reportUnknown() {
        for entry in entries where !taken.contains(entry.key) {
            let path = field.path.isEmpty ? entry.key : "\(field.path).\(entry.key)"
            field.problems.report(entry.line, path, "unknown field")
        }
    }
}

extension Node {
    /// The resolved tag (`str`, `int`, `float`, `bool`, `null`, …) of this node.
    ///
    /// A plain scalar's tag is still implicit (the parsers use `Resolver.basic`, which never
    /// runs) and `ScalarTag` resolves it; a quoted or block scalar is a string.
    var tagName: Tag.Name {
        guard case .scalar(let scalar) = self else { return Tag.Name(rawValue: tag.rawValue) }
        switch scalar.tag.rawValue {
        case Tag.Name.implicit.rawValue: return ScalarTag.resolve(scalar.string)
        case Tag.Name.nonSpecific.rawValue: return .str
        case let explicit: return Tag.Name(rawValue: explicit)
        }
    }
}
