import ArgumentParser
import ControlPlane
import Foundation
import Manifests

/// `eino apply -f PATH... [--dry-run]`: validated and stored all-or-nothing by the control plane.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Validate manifests and store them in the control plane (all or nothing).")

    @OptionGroup var control: ControlOptions

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A file, a directory or - (repeatable).")
    var files: [String] = []

    @Flag(help: "Validate and show what would change; store nothing.")
    var dryRun = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one file, directory or - with -f") }
    }

    func run() async throws {
        let request = try manifestRequest(files, dryRun: dryRun)
        let response = try await reportingRefusals {
            try await ControlClient(control).send(.POST, "/v1/apply", body: request, as: ControlAPI.ChangeResponse.self)
        }
        printChanges(response)
    }
}

/// `eino delete KIND NAME [-n NS]` or `eino delete -f PATH...`.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete resources from the control plane.")

    @OptionGroup var control: ControlOptions

    @Option(name: [.customShort("f"), .customLong("filename")], help: "Delete what these files define (repeatable).")
    var files: [String] = []

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "Namespace of NAME.")
    var namespace = "default"

    @Flag(help: "Show what would be deleted; delete nothing.")
    var dryRun = false

    @Argument(help: "KIND NAME, e.g. trafficsplits web-canary.")
    var target: [String] = []

    func validate() throws {
        guard files.isEmpty != target.isEmpty, target.isEmpty || target.count == 2 else {
            throw ValidationError("give either KIND NAME or -f PATH")
        }
        if let kind = target.first, ResourceKind(plural: kind) == nil {
            throw ValidationError("unknown kind \(kind); kinds: \(ResourceKind.allCases.map(\.plural).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let client = try ControlClient(control)
        let response = try await reportingRefusals {
            if files.isEmpty, let kind = ResourceKind(plural: target[0]) {
                return try await client.send(
                    .DELETE, "/v1/resources/\(kind.plural)/\(namespace)/\(target[1])\(dryRun ? "?dryRun=true" : "")",
                    as: ControlAPI.ChangeResponse.self)
            }
            return try await client.send(.POST, "/v1/delete", body: try manifestRequest(files, dryRun: dryRun), as: ControlAPI.ChangeResponse.self)
        }
        printChanges(response)
    }
}

/// `eino get KIND [NAME] [-n NS] [-o yaml|json]`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show stored resources.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, yaml, json
    }

    @OptionGroup var control: ControlOptions

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "Only this namespace (default: all).")
    var namespace: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "table, yaml or json.")
    var output: Format = .table

    @Argument(help: "trafficsplits, httproutegroups, tcproutes, traffictargets, trafficmirrors or endpoints.")
    var kind: String

    @Argument(help: "A resource name.")
    var name: String?

    func validate() throws {
        if ResourceKind(plural: kind) == nil, kind != "endpoints" {
            throw ValidationError("unknown kind \(kind); kinds: \(ResourceKind.allCases.map(\.plural).joined(separator: ", ")), endpoints")
        }
    }

    func run() async throws {
        guard let kind = ResourceKind(plural: kind) else { return try await showEndpoints() }
        let path = name.map { "/v1/resources/\(kind.plural)/\(namespace ?? "default")/\($0)" }
            ?? "/v1/resources/\(kind.plural)\(namespace.map { "?namespace=\($0)" } ?? "")"
        let list = try await reportingRefusals {
            try await ControlClient(control).send(.GET, path, as: ControlAPI.ResourceList.self)
        }
        switch output {
        case .yaml:
            print(ManifestEncoder.yaml(list.items), terminator: "")
        case .json:
            let objects = list.items.map(ManifestEncoder.object)
            let value: Any = name == nil ? ["apiVersion": "v1", "kind": "List", "items": objects] : objects[0]
            let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        case .table:
            guard !list.items.isEmpty else {
                printError("no \(kind.plural) found")
                return
            }
            for resource in list.items { print(resource.summary) }
        }
    }
}

extension GetCommand {
    /// `eino get endpoints`: what proxies have registered, from the control plane's registry.
    func showEndpoints() async throws {
        let list = try await reportingRefusals {
            try await ControlClient(control).send(.GET, "/v1/endpoints", as: ControlAPI.EndpointList.self)
        }
        let rows = list.items.filter { namespace == nil || $0.namespace == namespace }.filter { name == nil || $0.service == name }
        switch output {
        case .json, .yaml:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
        case .table:
            for row in rows { print("\(row.namespace)/\(row.service) \(row.address) \(row.identity)") }
        }
    }
}

/// Reads files as `eino validate` does and checks them locally first, so a bad file fails
/// with its own problems before anything is sent.
func manifestRequest(_ paths: [String], dryRun: Bool) throws -> ControlAPI.ApplyRequest {
    let inputs = ManifestInputs.read(paths)
    guard inputs.problems.isEmpty else {
        for problem in inputs.problems { printError(problem.description) }
        throw ExitCode(1)
    }
    return ControlAPI.ApplyRequest(
        files: inputs.streams.map { ControlAPI.ManifestFile(name: $0.name, content: String(decoding: $0.bytes, as: UTF8.self)) },
        dryRun: dryRun)
}

/// Runs a control-plane call, printing a refusal the way `eino validate` prints problems.
func reportingRefusals<T>(_ call: () async throws -> T) async throws -> T {
    do {
        return try await call()
    } catch let refusal as ControlAPI.ErrorResponse {
        if let problems = refusal.problems, !problems.isEmpty {
            for problem in problems { printError(problem.manifestProblem.description) }
        } else {
            printError("error: \(refusal.message)")
        }
        throw ExitCode(1)
    } catch let error as CLIError {
        printError("error: \(error.description)")
        throw ExitCode(1)
    }
}

func printChanges(_ response: ControlAPI.ChangeResponse) {
    for row in response.results {
        print("\(row.kind) \(row.namespace)/\(row.name) \(row.change)\(response.dryRun ? " (dry run)" : "")")
    }
}
