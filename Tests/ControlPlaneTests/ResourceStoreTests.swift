import ControlPlane
import Foundation
import Manifests
import Testing

@Suite struct ResourceStoreTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-store-\(UUID().uuidString)")

    func decode(_ yaml: String) -> [Resource] {
        let decoded = ManifestDecoder.decode(yaml, file: "apply.yaml")
        #expect(decoded.problems.isEmpty)
        return decoded.resources
    }

    let routesAndSplit = """
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: HTTPRouteGroup
        metadata: {name: reads}
        spec: {matches: [{name: get, methods: [GET]}]}
        ---
        apiVersion: split.smi-spec.io/v1alpha4
        kind: TrafficSplit
        metadata: {name: web-canary}
        spec:
          service: web
          matches: [{kind: HTTPRouteGroup, name: reads}]
          backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
        """

    var splitID: ResourceID { ResourceID(kind: .trafficSplit, namespace: "default", name: "web-canary") }
    var routesID: ResourceID { ResourceID(kind: .httpRouteGroup, namespace: "default", name: "reads") }

    @Test func applySurvivesReopening() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        let outcomes = try await store.apply(decode(routesAndSplit))
        #expect(outcomes.map(\.change) == [.created, .created])
        #expect(outcomes.map(\.resourceVersion) == ["1", "1"])

        let reopened = try ResourceStore(directory: directory)
        #expect(await reopened.state == store.state)
        #expect(await reopened.state.revision == 1)
        #expect(await reopened.resource(splitID)?.metadata.resourceVersion == "1")
        #expect(await reopened.resource(splitID)?.source == nil)

        let attributes = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(ResourceStore.fileName).path)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
    }

    @Test func reapplyingIsUnchangedAndEditsBumpTheVersion() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        _ = try await store.apply(decode(routesAndSplit))
        #expect(try await store.apply(decode(routesAndSplit)).map(\.change) == [.unchanged, .unchanged])
        #expect(await store.state.revision == 1)

        let edited = routesAndSplit.replacingOccurrences(of: "weight: 10}", with: "weight: 30}")
        let outcomes = try await store.apply(decode(edited))
        #expect(outcomes.map(\.change) == [.unchanged, .configured])
        #expect(outcomes.map(\.resourceVersion) == ["1", "2"])
    }

    @Test func staleResourceVersionIsAConflict() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        _ = try await store.apply(decode(routesAndSplit))
        _ = try await store.apply(decode(routesAndSplit.replacingOccurrences(of: "weight: 10}", with: "weight: 20}")))
        var stale = decode(routesAndSplit)
        stale[1].metadata.resourceVersion = "1"
        await #expect(throws: ResourceStore.Failure.conflict(id: splitID, given: "1", stored: "2")) {
            try await store.apply(stale)
        }
        #expect(await store.state.revision == 2)
        var current = decode(routesAndSplit)
        current[1].metadata.resourceVersion = "2"
        #expect(try await store.apply(current).map(\.change) == [.unchanged, .configured])
    }

    @Test func anInvalidSetStoresNothing() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        let split = Array(decode(routesAndSplit).dropFirst())  // its route group is missing
        do {
            _ = try await store.apply(split)
            Issue.record("apply should have failed")
        } catch {
            guard case .invalid(let problems) = error else { throw error }
            #expect(problems.map(\.description) == [
                "apply.yaml:11: TrafficSplit/default/web-canary: spec.matches[0].name: unresolved reference: HTTPRouteGroup default/reads is neither in this apply set nor stored",
            ])
        }
        #expect(await store.state == ResourceStore.State())
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(ResourceStore.fileName).path))
    }

    @Test func dryRunWritesNothing() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        #expect(try await store.apply(decode(routesAndSplit), dryRun: true).map(\.change) == [.created, .created])
        #expect(await store.state.resources.isEmpty)
    }

    @Test func deletingAReferencedRouteGroupIsRefused() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        _ = try await store.apply(decode(routesAndSplit))
        await #expect(throws: ResourceStore.Failure.self) { try await store.delete([routesID]) }
        #expect(await store.state.resources.count == 2)
        #expect(try await store.delete([splitID, routesID]).map(\.change) == [.deleted, .deleted])
        #expect(await store.state.resources.isEmpty)
        await #expect(throws: ResourceStore.Failure.notFound([splitID])) { try await store.delete([splitID]) }
    }

    @Test func watchersSeeEveryCommit() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try ResourceStore(directory: directory)
        var iterator = await store.watch().makeAsyncIterator()
        #expect(await iterator.next()?.revision == 0)
        _ = try await store.apply(decode(routesAndSplit))
        #expect(await iterator.next()?.revision == 1)
    }
}
