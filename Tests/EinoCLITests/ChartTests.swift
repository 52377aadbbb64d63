import EinoTestSupport
import Foundation
import Testing

/// charts/eino with the real helm (Tests/Scripts/helm.sh): it lints strictly, renders with
/// the default and the HA values, and what it renders is valid Kubernetes (kubernetes-validate;
/// its CRDs are checked by CRDSchemaTests, and KubernetesTests installs it into a real API server).
@Suite(.serialized) struct ChartTests {
    static let chart = "charts/eino"

    func render(_ values: [String]) throws -> String {
        let output = try KubernetesTests.helm(["template", "eino", Self.chart, "--namespace", "eino-system"] + values)
        #expect(output.status == 0, "\(output.stderr)")
        return output.stdout
    }

    @Test func lintsStrictly() throws {
        for values in [[], ["-f", "\(Self.chart)/values-ha.yaml"], ["--set", "webhook.url=https://10.0.0.5:7443", "--set", "podMonitor.enabled=true"]] {
            let lint = try KubernetesTests.helm(["lint", "--strict", Self.chart] + values)
            #expect(lint.status == 0, "\(values): \(lint.stdout)\(lint.stderr)")
        }
    }

    @Test func rendersValidObjects() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("eino-chart-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try render(["-f", "\(Self.chart)/values-ha.yaml"]).write(to: file, atomically: true, encoding: .utf8)
        let validated = try EinoProcess.run(InjectCommandTests.validator, ["--strict", "-k", "1.29.0", file.path])
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        let output = validated.stdout + validated.stderr
        for resource in ["deployment/eino-control", "service/eino-control", "serviceaccount/eino-control", "clusterrole/eino-control",
                         "clusterrolebinding/eino-control", "role/eino-control", "rolebinding/eino-control",
                         "poddisruptionbudget/eino-control", "mutatingwebhookconfiguration/eino-inject",
                         "validatingwebhookconfiguration/eino-validate"] {
            #expect(output.contains("passed for resource \(resource)"), "\(resource): \(output)")
        }
    }

    @Test func valuesReachTheObjects() throws {
        let defaults = try render([])
        #expect(defaults.contains("  replicas: 1\n"))
        #expect(!defaults.contains("kind: PodDisruptionBudget"))
        #expect(!defaults.contains("kind: PodMonitor"))
        #expect(defaults.contains("  failurePolicy: Fail\n"))
        #expect(defaults.contains("      name: eino-control\n      namespace: eino-system\n      path: \"/v1/webhooks/inject\"\n      port: 7443\n"))
        let ha = try render(["-f", "\(Self.chart)/values-ha.yaml", "--set", "webhook.failurePolicy=Ignore", "--set", "webhook.url=https://10.0.0.5:7443/",
                             "--set", "identity.trustDomain=corp.example", "--set", "podMonitor.enabled=true"])
        #expect(ha.contains("  replicas: 3\n"))
        #expect(ha.contains("requiredDuringSchedulingIgnoredDuringExecution"))
        #expect(ha.contains("  minAvailable: 2\n"))
        #expect(ha.contains("  failurePolicy: Ignore\n"))
        #expect(ha.contains("    url: \"https://10.0.0.5:7443/v1/webhooks/validate\"\n"))
        #expect(ha.contains("        - --trust-domain=corp.example\n"))
        #expect(ha.contains("kind: PodMonitor"))
        // An issuer brought along goes into its Secret; half of one is refused.
        let issuer = try render(["--set", "identity.issuer.certificate=CERT", "--set", "identity.issuer.key=KEY"])
        #expect(issuer.contains("  ca.pem: Q0VSVA==\n  ca.key: S0VZ\n"))
        let half = try KubernetesTests.helm(["template", "eino", Self.chart, "--set", "identity.issuer.certificate=CERT"])
        #expect(half.status == 1)
        #expect(half.stderr.contains("identity.issuer needs both certificate and key"))
    }
}
