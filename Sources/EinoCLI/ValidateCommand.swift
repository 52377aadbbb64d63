import ArgumentParser
import Foundation
import Manifests

/// `eino validate`: the same checks `eino apply` makes, offline.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check SMI and Eino manifests without applying them.",
        discussion: """
            Reads files, directories (every *.yaml and *.yml below them) or - for standard \
            input, all as one apply set. Prints one line per problem as \
            file:line: Kind/namespace/name: field: message and exits 1 if there is any; \
            otherwise prints one line per resource and exits 0.
            """
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A file, a directory or - (repeatable).")
    var files: [String] = []

    @Argument(help: "More files or directories.")
    var paths: [String] = []

    @Option(help: "What fully qualified service names end in (NAME.NS.svc.DOMAIN), as the control plane's --cluster-domain.")
    var clusterDomain = ServiceReference.defaultClusterDomain

    func validate() throws {
        if files.isEmpty && paths.isEmpty {
            throw ValidationError("give at least one file, directory or - with -f")
        }
        if let problem = ServiceReference.clusterDomainProblem(clusterDomain) {
            throw ValidationError("--cluster-domain: \(problem)")
        }
    }

    func run() throws {
        let inputs = ManifestInputs.read(files + paths)
        var problems = inputs.problems
        var resources: [Resource] = []
        for input in inputs.streams {
            let decoded = ManifestDecoder.decode(bytes: input.bytes, file: input.name, clusterDomain: clusterDomain)
            problems += decoded.problems
            resources += decoded.resources
        }
        problems += ResourceSetValidator().validate(resources)
        guard problems.isEmpty else {
            let order = Dictionary(inputs.streams.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
            let sorted = problems.enumerated().sorted { lhs, rhs in
                (order[lhs.element.file] ?? -1, lhs.element.line, lhs.offset) < (order[rhs.element.file] ?? -1, rhs.element.line, rhs.offset)
            }
            for (_, problem) in sorted { printError(problem.description) }
            throw ExitCode(1)
        }
        guard !resources.isEmpty else {
            printError("no resources found in \((files + paths).joined(separator: ", "))")
            throw ExitCode(1)
        }
        for resource in resources { print(resource.summary) }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
