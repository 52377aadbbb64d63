import EinoTestSupport
import Foundation
import Testing

/// `eino inject` end to end: the fixture with every kind, stdin, idempotency, and the output
/// checked by `kubernetes-validate` (installed by `make deps` into .build/kubernetes-validate).
@Suite(.serialized) struct InjectCommandTests {
    static let fixture = "Tests/Fixtures/inject/workloads.yaml"

    static var validator: URL {
        if let path = ProcessInfo.processInfo.environment["EINO_KUBERNETES_VALIDATE"] { return URL(fileURLWithPath: path) }
        return EinoProcess.repositoryRoot.appendingPathComponent(".build/kubernetes-validate/bin/kubernetes-validate")
    }

    private func validate(_ yaml: String, kubernetes: String) throws -> EinoProcess.Output {
        try #require(FileManager.default.isExecutableFile(atPath: Self.validator.path),
                     "kubernetes-validate is not installed at \(Self.validator.path): run `make deps`")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("eino-inject-\(UUID().uuidString).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return try EinoProcess.run(Self.validator, ["--strict", "-k", kubernetes, file.path])
    }

    @Test func injectsEveryKindAndTheResultValidates() throws {
        let result = try EinoProcess.eino(["inject", "-f", Self.fixture])
        #expect(result.status == 0, "\(result.stderr)")
        // Five workloads, each with one init container and one sidecar.
        #expect(result.stdoutLines.filter { $0.hasSuffix("- name: eino-init") }.count == 5)
        #expect(result.stdoutLines.filter { $0.hasSuffix("- name: eino-proxy") }.count == 5)
        #expect(result.stdoutLines.filter { $0.contains("NET_ADMIN") }.count == 5)
        // The Service and its comments come through as they were.
        #expect(result.stdout.contains("    targetPort: 8080   # the app's port\n"))
        let validated = try validate(result.stdout, kubernetes: "1.29.0")
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        for kind in ["deployment/web", "statefulset/db", "daemonset/agent", "job/report", "pod/debug", "service/web"] {
            #expect(validated.stdout.contains("passed for resource \(kind)") || validated.stderr.contains("passed for resource \(kind)"))
        }
    }

    @Test func nativeSidecarOutputValidates() throws {
        let result = try EinoProcess.eino(["inject", "--native-sidecar", "-f", Self.fixture])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines.filter { $0.hasSuffix("restartPolicy: Always") }.count == 5)
        let validated = try validate(result.stdout, kubernetes: "1.29.0")
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
    }

    @Test func reinjectingFromStdinChangesNothing() throws {
        let once = try EinoProcess.eino(["inject", "-f", Self.fixture, "--image", "registry.example/eino:1"])
        #expect(once.status == 0)
        #expect(once.stdout.contains("image: registry.example/eino:1"))
        let twice = try EinoProcess.eino(["inject", "-f", "-", "--image", "registry.example/eino:1"], stdin: once.stdout)
        #expect(twice.status == 0)
        #expect(twice.stdout == once.stdout)
    }

    @Test func disabledWorkloadsAreNotedOnStderr() throws {
        let input = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: legacy
          annotations: {eino.dev/inject: disabled}
        spec:
          containers: [{name: app, image: app:1}]

        """
        let result = try EinoProcess.eino(["inject", "-f", "-"], stdin: input)
        #expect(result.status == 0)
        #expect(result.stdout == input)
        #expect(result.stderr.contains("Pod/legacy: eino.dev/inject is disabled"))
    }

    @Test func problemsExit1() throws {
        let missing = try EinoProcess.eino(["inject", "-f", "/nonexistent/deploy.yaml"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("cannot read /nonexistent/deploy.yaml"))
        let bad = try EinoProcess.eino(["inject", "-f", "-"], stdin: "kind: Pod\nmetadata: [\n")
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("<stdin>:1: not valid YAML"))
        #expect(try EinoProcess.eino(["inject"]).status == 2)
    }
}
