import ArgumentParser
import ControlPlane
import Deploy
import Foundation
import Manifests
import Kubernetes
import MeshConfig

/// `eino control --data-dir DIR`: the control plane (CLI.md).
struct ControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Run the control plane: manifest store, apply API and CA.",
        discussion: """
            The first start creates DATA_DIR/ca.pem (the trust anchor), DATA_DIR/ca.key and \
            DATA_DIR/admin.token (both mode 0600). Prints one line when it listens: \
            `eino control ready listen=HOST:PORT`. SIGTERM or SIGINT stops it.
            """)

    @Flag(help: "Run on the Kubernetes API: it is the store, ServiceAccounts are the identities; no data directory.")
    var kubernetes = false

    @Option(help: "With --kubernetes: the kubeconfig to use (default: the pod's ServiceAccount).")
    var kubeconfig: String?

    @Option(help: "With --kubernetes: the mesh's own namespace, where the issuer and admin token Secrets live.")
    var namespace = "eino-system"

    @Option(help: "With --kubernetes: the image of the sidecar and init container the injection webhook adds.")
    var proxyImage = "eino:latest"

    @Option(help: "With --kubernetes: the URL injected proxies reach the control plane at (default https://eino-control.NAMESPACE.svc:PORT).")
    var proxyControlURL: String?

    @Option(help: "Where state, the CA and the admin token live (env EINO_DATA_DIR).")
    var dataDir: String = ProcessInfo.processInfo.environment["EINO_DATA_DIR"] ?? "./.eino"

    @Option(help: "HOST:PORT to listen on; port 0 picks a free one.")
    var listen = "127.0.0.1:7443"

    @Option(help: "Trust domain of the SPIFFE IDs this control plane issues.")
    var trustDomain = "cluster.local"

    @Option(help: "Use the CA in this directory (ca.pem, ca.key) instead of creating one.")
    var caDir: String?

    @Option(help: "What fully qualified service names in manifests end in (NAME.NS.svc.DOMAIN).")
    var clusterDomain = ServiceReference.defaultClusterDomain

    @Option(name: .customLong("server-name"), help: "Another DNS name or IP clients use for the control plane (repeatable).")
    var serverNames: [String] = []

    func run() async throws {
        guard case .success(let (host, port)) = Endpoint.parseAddress(listen) else {
            throw ValidationError("--listen must be HOST:PORT, got \(listen)")
        }
        if kubernetes && caDir != nil {
            throw ValidationError("--ca-dir does not go with --kubernetes: the issuer lives in the Secret eino-issuer of --namespace")
        }
        if let problem = ServiceReference.clusterDomainProblem(clusterDomain) {
            throw ValidationError("--cluster-domain: \(problem)")
        }
        var options = ControlPlaneServer.Options(
            dataDirectory: dataDir, host: host, port: port, trustDomain: trustDomain, caDirectory: caDir, serverNames: serverNames, clusterDomain: clusterDomain)
        if kubernetes {
            do {
                options.kubernetes = try kubeconfig.map(KubeConfig.load(path:)) ?? KubeConfig.inCluster()
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            options.meshNamespace = namespace
            options.injection = InjectionOptions(image: proxyImage, control: proxyControlURL ?? "https://eino-control.\(namespace).svc:\(port)")
        }
        let server = ControlPlaneServer(options)
        do {
            try await server.run { address in
                print("eino control ready listen=\(address)")
                fflush(nil)
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
