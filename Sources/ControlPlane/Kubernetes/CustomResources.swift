import Foundation
import Kubernetes
import Manifests

/// Eino's custom resources as the API server holds them, read by the manifest decoder (JSON
/// is YAML) so they pass exactly the checks `eino validate` makes, and the verdict each one
/// gets as its `Accepted` condition.
enum CustomResources {
    /// The collection of `kind` at its storage version (the last listed: CRDs in
    /// manifests/crds store the newest), across namespaces.
    static func path(_ kind: ResourceKind) -> String {
        "/apis/\(kind.group)/\(kind.versions.last!)/\(plural(kind))"
    }

    static func plural(_ kind: ResourceKind) -> String {
        kind.rawValue.lowercased() + "s"
    }

    /// Where one object's status is written.
    static func statusPath(_ kind: ResourceKind, namespace: String, name: String) -> String {
        "/apis/\(kind.group)/\(kind.versions.last!)/namespaces/\(namespace)/\(plural(kind))/\(name)/status"
    }

    /// One object: a resource, or the problems that keep it out. Problems carry field paths;
    /// there are no lines to give.
    static func decode(_ object: JSONValue, clusterDomain: String) -> Result<Resource, Verdict> {
        let decoded = ManifestDecoder.decode(bytes: Array(object.data()), file: label(object), clusterDomain: clusterDomain)
        if let resource = decoded.resources.first, decoded.problems.isEmpty { return .success(resource) }
        return .failure(Verdict(problems: decoded.problems))
    }

    /// `Kind/namespace/name`, as problems and resource IDs name an object.
    static func label(_ object: JSONValue) -> String {
        "\(object["kind"]?.string ?? "?")/\(object["metadata"]?["namespace"]?.string ?? "default")/\(object["metadata"]?["name"]?.string ?? "?")"
    }

    /// Whether a resource is enforced, as a `status.conditions` entry of type `Accepted`.
    struct Verdict: Error, Equatable {
        var problems: [ManifestProblem] = []

        var accepted: Bool { problems.isEmpty }

        /// `field: message` for each problem, as a webhook would say them.
        var message: String {
            accepted ? "enforced by the mesh" : problems.map { "\($0.field): \($0.message)" }.joined(separator: "; ")
        }

        func condition(generation: Int?, now: Date) -> JSONValue {
            var fields: [String: JSONValue] = [
                "type": .string("Accepted"),
                "status": .string(accepted ? "True" : "False"),
                "reason": .string(accepted ? "Valid" : "Invalid"),
                "message": .string(message),
                "lastTransitionTime": .string(ISO8601DateFormatter().string(from: now)),
            ]
            if let generation { fields["observedGeneration"] = .number(Double(generation)) }
            return .object(fields)
        }

        /// Whether `object` already says this (time aside).
        func isRecorded(in object: JSONValue) -> Bool {
            guard case .array(let conditions)? = object["status"]?["conditions"] else { return false }
            let generation = object["metadata"]?["generation"]
            return conditions.contains { condition in
                condition["type"]?.string == "Accepted" && condition["status"]?.string == (accepted ? "True" : "False")
                    && condition["message"]?.string == message
                    && (generation == nil || condition["observedGeneration"] == generation)
            }
        }
    }
}
