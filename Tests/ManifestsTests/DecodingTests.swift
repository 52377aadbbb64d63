import Testing
import Manifests

/// Every supported version of a kind decodes into the same model.
@Suite struct DecodingTests {
    func decodeOne(_ yaml: String) throws -> Resource {
        let decoded = ManifestDecoder.decode(yaml, file: "test.yaml")
        #expect(decoded.problems.map(\.description) == [])
        return try #require(decoded.resources.first)
    }

    @Test func trafficSplitVersionsAgree() throws {
        let v1 = try decodeOne("""
            apiVersion: split.smi-spec.io/v1alpha1
            kind: TrafficSplit
            metadata: {name: web-canary}
            spec:
              service: web
              backends:
              - {service: web-v1, weight: 900m}
              - {service: web-v2, weight: "100m"}
            """)
        #expect(v1.spec == .trafficSplit(TrafficSplit(service: "web", backends: [
            .init(service: "web-v1", weight: 900), .init(service: "web-v2", weight: 100),
        ])))
        #expect(v1.summary == "TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%")
        for version in ["v1alpha2", "v1alpha3", "v1alpha4"] {
            let split = try decodeOne("""
                apiVersion: split.smi-spec.io/\(version)
                kind: TrafficSplit
                metadata: {name: web-canary}
                spec:
                  service: web
                  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
                """)
            #expect(split.apiVersion == "split.smi-spec.io/\(version)")
            #expect(split.summary == "TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%")
        }
    }

    @Test func metadataIsKept() throws {
        let resource = try decodeOne("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata:
              name: web-canary
              namespace: shop
              labels: {app: web}
              annotations: {owner: team-a}
              resourceVersion: "7"
              uid: 0c2a4f
              creationTimestamp: "2026-01-01T00:00:00Z"
            spec:
              service: web
              backends: [{service: web-v1, weight: 1}]
            status: {observed: true}
            """)
        #expect(resource.metadata == ObjectMeta(
            name: "web-canary", namespace: "shop", labels: ["app": "web"], annotations: ["owner": "team-a"],
            resourceVersion: "7"))
        #expect(resource.source?.line == 1)
    }

    @Test func namespaceDefaultsToDefault() throws {
        let resource = try decodeOne("""
            apiVersion: specs.smi-spec.io/v1alpha4
            kind: TCPRoute
            metadata: {name: db}
            spec: {matches: {ports: [5432, 6432]}}
            """)
        #expect(resource.id == ResourceID(kind: .tcpRoute, namespace: "default", name: "db"))
        #expect(resource.spec == .tcpRoute(TCPRoute(ports: [5432, 6432])))
    }

    @Test func httpRouteGroupVersionsAgree() throws {
        let expected = HTTPRouteGroup(matches: [
            .init(name: "beta", pathRegex: "/api/", methods: ["GET", "POST"],
                  headers: [.init(name: "x-beta", valueRegex: "^true$")]),
        ])
        let v2 = try decodeOne("""
            apiVersion: specs.smi-spec.io/v1alpha2
            kind: HTTPRouteGroup
            metadata: {name: routes}
            matches:
            - name: beta
              pathRegex: /api/
              methods: [GET, POST]
              headers: {X-Beta: "^true$"}
            """)
        #expect(v2.spec == .httpRouteGroup(expected))
        for version in ["v1alpha3", "v1alpha4"] {
            // The list-of-mappings header form that published examples use means the same.
            let later = try decodeOne("""
                apiVersion: specs.smi-spec.io/\(version)
                kind: HTTPRouteGroup
                metadata: {name: routes}
                spec:
                  matches:
                  - name: beta
                    pathRegex: /api/
                    methods: [GET, POST]
                    headers:
                    - x-beta: "^true$"
                """)
            #expect(later.spec == .httpRouteGroup(expected))
        }
        let v1 = try decodeOne("""
            apiVersion: specs.smi-spec.io/v1alpha1
            kind: HTTPRouteGroup
            metadata: {name: routes}
            matches: [{name: all, methods: ["*"]}]
            """)
        #expect(v1.spec == .httpRouteGroup(HTTPRouteGroup(matches: [.init(name: "all")])))
    }

    @Test func trafficTargetDefaultsSubjectNamespace() throws {
        let resource = try decodeOne("""
            apiVersion: access.smi-spec.io/v1alpha2
            kind: TrafficTarget
            metadata: {name: t, namespace: shop}
            spec:
              destination: {kind: ServiceAccount, name: web, port: 8080}
              sources: [{kind: ServiceAccount, name: client, namespace: edge}]
              rules: [{kind: TCPRoute, name: db}]
            """)
        #expect(resource.spec == .trafficTarget(TrafficTarget(
            destination: .init(name: "web", namespace: "shop", port: 8080),
            sources: [.init(name: "client", namespace: "edge")],
            rules: [.init(kind: .tcpRoute, name: "db")])))
    }

    @Test func trafficMirror() throws {
        let resource = try decodeOne("""
            apiVersion: mirror.eino.dev/v1alpha1
            kind: TrafficMirror
            metadata: {name: web-shadow}
            spec:
              service: web
              mirrors: [{service: web-v2, percent: 12.5}]
              compare:
                ignoreHeaders: [Date, x-request-id]
                ignoreJSONPaths: ["$.meta.time", "$.items[*].id", "$['a b'][0]"]
                maxBodyBytes: 1024
            """)
        #expect(resource.spec == .trafficMirror(TrafficMirror(
            service: "web", mirrors: [.init(service: "web-v2", percent: 12.5)],
            compare: .init(ignoreHeaders: ["date", "x-request-id"],
                           ignoreJSONPaths: ["$.meta.time", "$.items[*].id", "$['a b'][0]"], maxBodyBytes: 1024))))
        #expect(resource.summary == "TrafficMirror default/web-shadow: web ⇉ web-v2 12.5% (compared, bodies up to 1024 bytes)")
    }

    @Test func emptyDocumentsAreSkipped() {
        let decoded = ManifestDecoder.decode("---\n# nothing\n---\n", file: "empty.yaml")
        #expect(decoded.resources.isEmpty)
        #expect(decoded.problems.isEmpty)
    }

    @Test func splitPercentagesAreRounded() throws {
        let resource = try decodeOne("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: thirds}
            spec: {service: web, backends: [{service: a, weight: 1}, {service: b, weight: 2}]}
            """)
        #expect(resource.summary == "TrafficSplit default/thirds: web → a 33.33%, b 66.67%")
    }
}
