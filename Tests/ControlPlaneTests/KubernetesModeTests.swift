import Foundation
import Kubernetes
import Manifests
import MeshConfig
@testable import ControlPlane
import Testing

/// The pieces of Kubernetes mode that need no API server: what a Lease's times look like,
/// how Services and EndpointSlices become the services proxies get, and the verdicts.
@Suite struct KubernetesModeTests {
    @Test func leaseTimesAreMicroTimesAndReadBack() throws {
        let date = Date(timeIntervalSince1970: 1_796_000_000.25)
        let text = Leader.microTime(date)
        #expect(text == "2026-11-30T00:53:20.250000Z")
        #expect(Leader.parseMicroTime(text) == date)
        #expect(Leader.parseMicroTime("2026-11-30T00:53:20.250999Z") == date)
        #expect(Leader.parseMicroTime("2026-11-30T00:53:20Z") == Date(timeIntervalSince1970: 1_796_000_000))
        #expect(Leader.parseMicroTime("yesterday") == nil)
    }

    @Test func endpointsOfPodsWithTheSidecarAreMeshEndpoints() throws {
        func decode<T: Decodable>(_ json: String) throws -> T { try JSONDecoder().decode(T.self, from: Data(json.utf8)) }
        let cluster = ClusterServices(
            services: [try decode(#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"clusterIP":"10.96.0.7","ports":[{"port":80,"appProtocol":"kubernetes.io/h2c"}]}}"#)],
            slices: [try decode(#"{"metadata":{"name":"web-a","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"ports":[{"port":8080}],"endpoints":[{"addresses":["10.1.0.2"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"web-0"}},{"addresses":["10.1.0.3"],"targetRef":{"kind":"Pod","name":"legacy-0"}},{"addresses":["10.1.0.4"],"conditions":{"ready":false}}]}"#)],
            pods: [try decode(#"{"metadata":{"name":"web-0","namespace":"shop"},"spec":{"serviceAccountName":"web","containers":[{"name":"app"},{"name":"eino-proxy"}]}}"#),
                   try decode(#"{"metadata":{"name":"legacy-0","namespace":"shop"},"spec":{"containers":[{"name":"app"}]}}"#)])
        #expect(cluster.specs(trustDomain: "corp.example") == [
            ServiceSpec(key: ServiceKey(name: "web", namespace: "shop"), endpoints: [
                Endpoint(host: "10.1.0.2", port: 8080, identity: "spiffe://corp.example/ns/shop/sa/web"),
                Endpoint(host: "10.1.0.3", port: 8080),
            ], clusterIP: "10.96.0.7", appProtocol: .h2c),
        ])
    }

    @Test func verdictsAreRecordedOnceAndSayWhy() throws {
        let object = try JSONDecoder().decode(JSONValue.self, from: Data(#"""
            {"apiVersion":"split.smi-spec.io/v1alpha4","kind":"TrafficSplit","metadata":{"name":"s","namespace":"shop","generation":3},
             "spec":{"service":"web","backends":[{"service":"web","weight":1}]}}
            """#.utf8))
        guard case .failure(let verdict) = CustomResources.decode(object, clusterDomain: "cluster.local") else {
            Issue.record("a split naming its root as a backend was accepted")
            return
        }
        #expect(verdict.message == #"spec.backends[0].service: backend "web" is the root service itself; backends must be other services"#)
        #expect(!verdict.isRecorded(in: object))
        guard case .object(var fields) = object else { return }
        fields["status"] = .object(["conditions": .array([verdict.condition(generation: 3, now: Date())])])
        #expect(verdict.isRecorded(in: .object(fields)))
        #expect(!CustomResources.Verdict().isRecorded(in: .object(fields)))
    }
}
