import Foundation
import Testing
import Manifests

/// Encoding a resource in its own apiVersion and decoding it again gives it back.
@Suite struct ManifestEncoderTests {
    static let examples: [Resource] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("manifests/examples")
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted().flatMap { name in
            ManifestDecoder.decode(bytes: Array((try? Data(contentsOf: directory.appendingPathComponent(name))) ?? Data()), file: name).resources
        }
    }()

    func roundTrip(_ resource: Resource) throws -> Resource {
        var original = resource
        original.source = nil
        let yaml = ManifestEncoder.yaml([original])
        let decoded = ManifestDecoder.decode(yaml, file: "encoded.yaml")
        #expect(decoded.problems.map(\.description) == [], "\(yaml)")
        var back = try #require(decoded.resources.first)
        back.source = nil
        return back
    }

    @Test func examplesRoundTrip() throws {
        #expect(Self.examples.count == 6)
        for resource in Self.examples {
            var original = resource
            original.source = nil
            #expect(try roundTrip(resource) == original)
        }
    }

    @Test func everyVersionRoundTrips() throws {
        let yaml = """
            apiVersion: split.smi-spec.io/v1alpha1
            kind: TrafficSplit
            metadata: {name: q, labels: {app: web}, resourceVersion: "12"}
            spec: {service: web, backends: [{service: a, weight: 1500m}, {service: b, weight: 2}]}
            ---
            apiVersion: specs.smi-spec.io/v1alpha1
            kind: HTTPRouteGroup
            metadata: {name: old}
            matches: [{name: m, pathRegex: "/x", methods: [GET]}]
            ---
            apiVersion: specs.smi-spec.io/v1alpha2
            kind: HTTPRouteGroup
            metadata: {name: mid}
            matches: [{name: m, headers: {x-a: "^1$"}}]
            ---
            apiVersion: specs.smi-spec.io/v1alpha4
            kind: TCPRoute
            metadata: {name: db}
            spec: {matches: {ports: [5432]}}
            ---
            apiVersion: specs.smi-spec.io/v1alpha2
            kind: TCPRoute
            metadata: {name: any}
            ---
            apiVersion: access.smi-spec.io/v1alpha2
            kind: TrafficTarget
            metadata: {name: t}
            spec:
              destination: {kind: ServiceAccount, name: db, port: 5432}
              sources: [{kind: ServiceAccount, name: web, namespace: shop}]
              rules: [{kind: TCPRoute, name: db}]
            ---
            apiVersion: mirror.eino.dev/v1alpha1
            kind: TrafficMirror
            metadata: {name: m}
            spec:
              service: web
              mirrors: [{service: web-v2, percent: 12.5}]
              compare: {ignoreJSONPaths: ["$.a"], maxBodyBytes: 10}
            """
        let resources = ManifestDecoder.decode(yaml, file: "all.yaml").resources
        #expect(resources.count == 7)
        for resource in resources {
            var original = resource
            original.source = nil
            #expect(try roundTrip(resource) == original)
        }
        #expect(ManifestEncoder.yaml([resources[0]]).contains("weight: 1500m"))
        #expect(ManifestEncoder.yaml([resources[0]]).contains("weight: 2\n"))
    }

    @Test func pluralNames() {
        #expect(ResourceKind.allCases.map(\.plural) == ["trafficsplits", "httproutegroups", "tcproutes", "traffictargets", "trafficmirrors"])
        #expect(ResourceKind(plural: "TrafficSplit") == .trafficSplit)
        #expect(ResourceKind(plural: "httproutegroups") == .httpRouteGroup)
        #expect(ResourceKind(plural: "pods") == nil)
    }
}

extension ManifestEncoderTests {
    @Test func yamlLooksLikeAManifest() {
        let resources = ManifestDecoder.decode("""
            apiVersion: split.smi-spec.io/v1alpha1
            kind: TrafficSplit
            metadata: {name: q, labels: {app: "123"}, resourceVersion: "12"}
            spec: {service: web, backends: [{service: a, weight: 1500m}, {service: b, weight: 2}]}
            """, file: "q.yaml").resources
        #expect(ManifestEncoder.yaml(resources) == """
            apiVersion: split.smi-spec.io/v1alpha1
            kind: TrafficSplit
            metadata:
              name: q
              namespace: default
              labels:
                app: "123"
              resourceVersion: "12"
            spec:
              service: web
              backends:
              - service: a
                weight: 1500m
              - service: b
                weight: 2

            """)
    }
}
