/// One thing wrong with a manifest, pinned to where the user can fix it.
///
/// Printed as `file:line: Kind/namespace/name: field.path: message`, one problem a line,
/// so editors and CI logs can jump to it.
public struct ManifestProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// `Kind/namespace/name`, or `document N` when the kind is not known.
    public var resource: String
    /// Dotted field path such as `spec.backends[1].weight`; `(document)` for the whole document.
    public var field: String
    public var message: String

    public init(file: String, line: Int, resource: String, field: String, message: String) {
        self.file = file
        self.line = line
        self.resource = resource
        self.field = field
        self.message = message
    }

    public var description: String {
        "\(file):\(line): \(resource): \(field): \(message)"
    }
}

/// Where a resource came from: enough to point back at it in later messages.
public struct SourceLocation: Hashable, Sendable, Codable, CustomStringConvertible {
    public var file: String
    /// The line the document starts on.
    public var line: Int
    /// Lines of fields that refer to other resources, by field path.
    public var referenceLines: [String: Int]

    public init(file: String, line: Int, referenceLines: [String: Int] = [:]) {
        self.file = file
        self.line = line
        self.referenceLines = referenceLines
    }

    /// The line of `field` when known, else the document's.
    public func line(of field: String) -> Int {
        referenceLines[field] ?? line
    }

    public var description: String { "\(file):\(line)" }
}
