import EinoTestSupport
import Foundation
import Testing

/// `eino validate` as users run it: the real binary, real files, exit codes and output.
@Suite struct ValidateCommandTests {
    static let invalidFixtures: [String] = {
        let directory = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Fixtures/invalid")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }()

    @Test func examplesAreValid() throws {
        let result = try EinoProcess.eino(["validate", "manifests/examples"])
        #expect(result.stderr == "")
        #expect(result.status == 0)
        #expect(result.stdoutLines == [
            "TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%",
            "HTTPRouteGroup default/beta-users: 1 match (beta)",
            "TrafficSplit default/api-beta: api [HTTPRouteGroup beta-users] → api-v1 0%, api-v2 100%",
            "TrafficMirror default/web-shadow: web ⇉ web-v2 100% (compared, bodies up to 65536 bytes)",
            "HTTPRouteGroup default/web-reads: 1 match (get-all)",
            "TrafficTarget default/web-from-client: default/client → default/web via HTTPRouteGroup web-reads [get-all]",
        ])
    }

    @Test func fixturesCoverEveryRule() {
        #expect(Self.invalidFixtures.count == 19)
    }

    /// Every spelling of a service reference validates, and is summarised by its short name.
    @Test func serviceSpellingsAreValid() throws {
        let result = try EinoProcess.eino(["validate", "Tests/Fixtures/valid/service-spellings.yaml"])
        #expect(result.stderr == "")
        #expect(result.status == 0)
        #expect(result.stdoutLines == [
            "TrafficSplit shop/short: api → api-v1 100%",
            "TrafficSplit shop/with-namespace: cart → cart-v1 100%",
            "TrafficSplit shop/with-svc: pay → pay-v1 50%, pay-v2 50%",
            "TrafficSplit shop/fqdn: orders → orders-v2 100%",
            "TrafficMirror shop/fqdn-mirror: web ⇉ web-v2 10%",
        ])
        // Under another cluster domain the FQDNs are someone else's.
        let other = try EinoProcess.eino(["validate", "--cluster-domain", "corp.example", "Tests/Fixtures/valid/service-spellings.yaml"])
        #expect(other.status == 1)
        #expect(other.stderrLines.count == 3)
        #expect(other.stderrLines.first?.hasSuffix(#"spec.service: "orders.shop.svc.cluster.local" ends in cluster domain "cluster.local", but this mesh's is "corp.example""#) == true)
        let bad = try EinoProcess.eino(["validate", "--cluster-domain", "Corp_Example", "Tests/Fixtures/valid/service-spellings.yaml"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--cluster-domain: cluster domain must be a DNS-1123 subdomain"))
    }

    /// Each fixture `NAME.yaml` fails with exactly the lines in `NAME.expected`.
    @Test(arguments: invalidFixtures)
    func invalidFixtureIsRejected(name: String) throws {
        let path = "Tests/Fixtures/invalid/\(name)"
        let expectedURL = EinoProcess.repositoryRoot
            .appendingPathComponent(path.replacingOccurrences(of: ".yaml", with: ".expected"))
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        let result = try EinoProcess.eino(["validate", "-f", path])
        #expect(result.status == 1)
        #expect(result.stdout == "")
        #expect(result.stderr == expected)
        #expect(!expected.isEmpty)
    }

    @Test func stdinIsNamed() throws {
        let result = try EinoProcess.eino(["validate", "-f", "-"], stdin: """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: s}
            spec: {service: web, backends: [{service: web-v1, weight: -1}]}
            """)
        #expect(result.status == 1)
        #expect(result.stderrLines == ["<stdin>:4: TrafficSplit/default/s: spec.backends[0].weight: must not be negative, got -1"])
    }

    @Test func filesFormOneApplySet() throws {
        // The route group lives in another file of the same invocation.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-validate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            apiVersion: split.smi-spec.io/v1alpha4
            kind: TrafficSplit
            metadata: {name: s}
            spec:
              service: web
              matches: [{kind: HTTPRouteGroup, name: routes}]
              backends: [{service: web-v1, weight: 1}]
            """.write(to: directory.appendingPathComponent("split.yml"), atomically: true, encoding: .utf8)
        let routes = directory.appendingPathComponent("nested")
        try FileManager.default.createDirectory(at: routes, withIntermediateDirectories: true)
        try """
            apiVersion: specs.smi-spec.io/v1alpha4
            kind: HTTPRouteGroup
            metadata: {name: routes}
            spec: {matches: [{name: all}]}
            """.write(to: routes.appendingPathComponent("routes.yaml"), atomically: true, encoding: .utf8)
        try "not yaml at all: [".write(to: routes.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)

        let together = try EinoProcess.eino(["validate", directory.path])
        #expect(together.status == 0)
        #expect(together.stdoutLines == [
            "HTTPRouteGroup default/routes: 1 match (all)",
            "TrafficSplit default/s: web [HTTPRouteGroup routes] → web-v1 100%",
        ])
        let alone = try EinoProcess.eino(["validate", directory.appendingPathComponent("split.yml").path])
        #expect(alone.status == 1)
        #expect(alone.stderrLines == [
            "\(directory.path)/split.yml:6: TrafficSplit/default/s: spec.matches[0].name: unresolved reference: HTTPRouteGroup default/routes is neither in this apply set nor stored",
        ])
    }

    @Test func missingPathFails() throws {
        let result = try EinoProcess.eino(["validate", "no/such/file.yaml"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["no/such/file.yaml:0: document 1: (file): no such file or directory"])
    }

    @Test func emptyInputFails() throws {
        let result = try EinoProcess.eino(["validate", "-f", "-"], stdin: "# nothing here\n")
        #expect(result.status == 1)
        #expect(result.stderrLines == ["no resources found in -"])
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try EinoProcess.eino(["validate"]).status == 2)
        #expect(try EinoProcess.eino(["validate", "--bogus", "x"]).status == 2)
        #expect(try EinoProcess.eino(["frobnicate"]).status == 2)
    }

    @Test func version() throws {
        let result = try EinoProcess.eino(["version"])
        #expect(result.status == 0)
        #expect(result.stdout == "eino 0.1.0\n")
    }
}
