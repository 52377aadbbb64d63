import Manifests
import Testing

/// A Service is named as clients spell it in DNS; every spelling is the same service.
@Suite struct ServiceReferenceTests {
    func shortName(_ text: String, in namespace: String = "shop", clusterDomain: String = "cluster.local") -> String {
        switch ServiceReference.shortName(text, namespace: namespace, clusterDomain: clusterDomain) {
        case .success(let name): name
        case .failure(let problem): "problem: \(problem)"
        }
    }

    @Test func everySpellingNamesTheShortName() {
        #expect(shortName("api") == "api")
        #expect(shortName("api.shop") == "api")
        #expect(shortName("api.shop.svc") == "api")
        #expect(shortName("api.shop.svc.cluster.local") == "api")
        #expect(shortName("api.shop.svc.cluster.local.") == "api")
        #expect(shortName("api.shop.svc.corp.example", clusterDomain: "corp.example") == "api")
    }

    @Test func otherNamespacesAndDomainsAreRefusedByName() {
        #expect(shortName("api.default") == #"problem: "api.default" names namespace "default", but this resource is in namespace "shop"; it may only name services in its own namespace"#)
        #expect(shortName("api.shop.svc.example.org") == #"problem: "api.shop.svc.example.org" ends in cluster domain "example.org", but this mesh's is "cluster.local""#)
        #expect(shortName("api.shop.svc.cluster.local", clusterDomain: "corp.example") == #"problem: "api.shop.svc.cluster.local" ends in cluster domain "cluster.local", but this mesh's is "corp.example""#)
        #expect(shortName("api.shop.pod") == #"problem: must be NAME, NAME.NAMESPACE, NAME.NAMESPACE.svc or NAME.NAMESPACE.svc.cluster.local (got "api.shop.pod")"#)
        #expect(shortName("api..svc") == #"problem: "api..svc": namespace must not be empty"#)
        #expect(shortName("1api.shop") == #"problem: "1api.shop": service must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (got "1api")"#)
        #expect(shortName("Api") == #"problem: must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (got "Api")"#)
        #expect(shortName(".") == #"problem: ".": service must not be empty"#)
    }

    @Test func splitsAndMirrorsKeepTheShortName() throws {
        let decoded = ManifestDecoder.decode("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: api, namespace: shop}
            spec:
              service: api.shop.svc.cluster.local
              backends: [{service: api-v1.shop, weight: 1}, {service: api-v2.shop.svc, weight: 3}]
            ---
            apiVersion: mirror.eino.dev/v1alpha1
            kind: TrafficMirror
            metadata: {name: web, namespace: shop}
            spec:
              service: web.shop
              mirrors: [{service: web-v2.shop.svc.cluster.local, percent: 5}]
            """, file: "test.yaml")
        #expect(decoded.problems.map(\.description) == [])
        #expect(decoded.resources.map(\.spec) == [
            .trafficSplit(TrafficSplit(service: "api", backends: [.init(service: "api-v1", weight: 1), .init(service: "api-v2", weight: 3)])),
            .trafficMirror(TrafficMirror(service: "web", mirrors: [.init(service: "web-v2", percent: 5)])),
        ])
    }

    /// Spellings are compared as the services they name: `api` and `api.shop` are one backend.
    @Test func duplicatesAreFoundAcrossSpellings() {
        let decoded = ManifestDecoder.decode("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: api, namespace: shop}
            spec:
              service: api
              backends: [{service: api-v1, weight: 1}, {service: api-v1.shop.svc, weight: 1}, {service: api.shop, weight: 1}]
            """, file: "test.yaml")
        #expect(decoded.problems.map(\.description) == [
            #"test.yaml:6: TrafficSplit/shop/api: spec.backends[1].service: duplicate backend "api-v1" (also spec.backends[0].service)"#,
            #"test.yaml:6: TrafficSplit/shop/api: spec.backends[2].service: backend "api" is the root service itself; backends must be other services"#,
        ])
    }

    @Test func theClusterDomainIsConfigurable() {
        let yaml = """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: api}
            spec: {service: api.default.svc.corp.example, backends: [{service: api-v1, weight: 1}]}
            """
        #expect(ManifestDecoder.decode(yaml, file: "t.yaml", clusterDomain: "corp.example").problems.isEmpty)
        #expect(ManifestDecoder.decode(yaml, file: "t.yaml").problems.map(\.description) == [
            #"t.yaml:4: TrafficSplit/default/api: spec.service: "api.default.svc.corp.example" ends in cluster domain "corp.example", but this mesh's is "cluster.local""#,
        ])
    }
}
