import ArgumentParser
import Deploy
import Foundation

/// `eino inject`: adds the init container and the sidecar to Kubernetes workloads.
struct InjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inject",
        abstract: "Add Eino's init container and sidecar to Kubernetes workloads.",
        discussion: """
        Reads multi-document YAML and writes it to stdout. Deployments, StatefulSets, DaemonSets, \
        ReplicaSets, Jobs, CronJobs and Pods get the eino-init container (the only one with NET_ADMIN and \
        NET_RAW) and the eino-proxy sidecar (uid 7102); everything else is copied unchanged, and so is a \
        workload that already has them. Pod template annotations: eino.dev/inject: disabled, \
        eino.dev/skip-outbound-ports, eino.dev/skip-inbound-ports, eino.dev/service. \
        Example: eino inject -f deploy.yaml | kubectl apply -f -
        """
    )

    @Option(name: .customShort("f"), help: "The manifest file, or - for stdin.")
    var file: String

    @Flag(name: .customLong("native-sidecar"), help: "Emit the sidecar as an init container with restartPolicy: Always (Kubernetes 1.29 and later).")
    var nativeSidecar = false

    @Option(help: "The Eino image.")
    var image: String = "eino:\(Eino.version)"

    @Option(help: "The control plane URL the sidecars join.")
    var control: String = "https://eino-control.eino-system.svc:7443"

    func run() throws {
        let text: String
        let source = file == "-" ? "<stdin>" : file
        do {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            text = String(decoding: data, as: UTF8.self)
        } catch {
            FileHandle.standardError.write(Data("eino inject: cannot read \(source): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
        var options = InjectionOptions(image: image, control: control)
        options.nativeSidecar = nativeSidecar
        do {
            let result = try Injector.inject(text, source: source, options: options)
            FileHandle.standardOutput.write(Data(result.output.utf8))
            for note in result.notes { FileHandle.standardError.write(Data("eino inject: \(note)\n".utf8)) }
        } catch let error as InjectionError {
            FileHandle.standardError.write(Data("eino inject: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }
}
