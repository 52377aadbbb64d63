import Foundation
import Kubernetes
import Manifests
import MeshConfig

/// Kubernetes mode's store: Services, EndpointSlices, Pods and Eino's custom resources,
/// each kept by an ``Informer``, turned into the same config proxies get from a file store.
/// Each custom resource gets its `Accepted` condition. The first config goes out once every
/// kind has been listed, so no proxy ever sees a half-read cluster; after that, only a
/// change of what proxies receive is published.
actor KubernetesSource {
    private let client: KubernetesClient
    private let publisher: ConfigPublisher
    private let trustDomain: String
    private let clusterDomain: String
    private let log: @Sendable (String) -> Void

    private var cluster = ClusterServices()
    private var namespaces: [String: JSONValue] = [:]
    private var custom: [ResourceKind: [JSONValue]] = [:]
    private var synced: Set<String> = []
    private var published: (services: [ServiceSpec], resources: [Resource])?
    /// Objects already reported as undecodable, so a resync does not repeat the log line.
    private var reported: Set<String> = []
    /// Whether this replica holds the Lease: only the holder writes status.
    private var leading = false
    private var listedAll = false

    init(client: KubernetesClient, publisher: ConfigPublisher, trustDomain: String, clusterDomain: String,
         log: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.publisher = publisher
        self.trustDomain = trustDomain
        self.clusterDomain = clusterDomain
        self.log = log
    }

    /// Watches everything until cancelled.
    func run() async {
        let slicePath = await Self.endpointSlicePath(client)
        var feeds: [(String, @Sendable (KubernetesSource, [JSONValue]) async -> Void)] = [
            ("/api/v1/services", { await $0.update(services: $1) }),
            ("/api/v1/pods", { await $0.update(pods: $1) }),
            ("/api/v1/namespaces", { await $0.update(namespaces: $1) }),
            (slicePath, { await $0.update(slices: $1) }),
        ]
        for kind in ResourceKind.allCases {
            feeds.append((CustomResources.path(kind), { await $0.update(kind, $1) }))
        }
        let expected = Set(feeds.map(\.0))
        await withTaskGroup(of: Void.self) { group in
            for (path, feed) in feeds {
                let informer = Informer(client: client, path: path) { [weak self] objects in
                    guard let self else { return }
                    await feed(self, objects)
                    await self.listed(path, expected: expected)
                }
                group.addTask { await informer.run() }
            }
        }
    }

    /// EndpointSlices are `discovery.k8s.io/v1` from Kubernetes 1.21, `v1beta1` before.
    static func endpointSlicePath(_ client: KubernetesClient) async -> String {
        if (try? await client.send(.GET, "/apis/discovery.k8s.io/v1")) != nil { return "/apis/discovery.k8s.io/v1/endpointslices" }
        return "/apis/discovery.k8s.io/v1beta1/endpointslices"
    }

    private func listed(_ path: String, expected: Set<String>) async {
        synced.insert(path)
        guard synced.isSuperset(of: expected) else { return }
        listedAll = true
        await recompute()
    }

    /// This replica gained or lost the Lease; a new holder records every verdict at once.
    func setLeading(_ leading: Bool) async {
        self.leading = leading
        if leading && listedAll { await recompute() }
    }

    private func update(services objects: [JSONValue]) { cluster.services = decodeAll(objects, as: Service.self) }
    private func update(pods objects: [JSONValue]) { cluster.pods = decodeAll(objects, as: Pod.self) }
    private func update(slices objects: [JSONValue]) { cluster.slices = decodeAll(objects, as: EndpointSlice.self) }
    private func update(_ kind: ResourceKind, _ objects: [JSONValue]) { custom[kind] = objects }
    private func update(namespaces objects: [JSONValue]) {
        namespaces = Dictionary(objects.map { ($0["metadata"]?["name"]?.string ?? "", $0) }, uniquingKeysWith: { $1 })
    }

    /// A namespace as last seen (its labels and annotations say whether to inject).
    func namespace(_ name: String) -> JSONValue? { namespaces[name] }

    /// What the mesh enforces now.
    func acceptedResources() -> [Resource] { published?.resources ?? [] }

    /// The objects that decode; one that does not is reported once and skipped.
    private func decodeAll<T: Decodable>(_ objects: [JSONValue], as type: T.Type) -> [T] {
        objects.compactMap { object in
            do {
                return try JSONDecoder().decode(T.self, from: object.data())
            } catch {
                let key = "\(T.self) \(Informer.key(object)) \(object["metadata"]?["resourceVersion"]?.string ?? "")"
                if reported.insert(key).inserted { log("skipping \(T.self) \(Informer.key(object)): \(error)") }
                return nil
            }
        }
    }

    private func recompute() async {
        var resources: [Resource] = []
        var verdicts: [(ResourceKind, JSONValue, CustomResources.Verdict)] = []
        for kind in ResourceKind.allCases {
            for object in custom[kind] ?? [] {
                switch CustomResources.decode(object, clusterDomain: clusterDomain) {
                case .success(let resource):
                    resources.append(resource)
                    verdicts.append((kind, object, CustomResources.Verdict()))
                case .failure(let verdict):
                    verdicts.append((kind, object, verdict))
                }
            }
        }
        // What only the whole set shows (two splits for one service, an unresolved route
        // group) keeps the resources it names out, with the same message as `eino apply`.
        let crossProblems = ResourceSetValidator().validate(resources)
        if !crossProblems.isEmpty {
            let refused = Dictionary(grouping: crossProblems, by: \.resource)
            resources.removeAll { refused[$0.id.description] != nil }
            verdicts = verdicts.map { kind, object, verdict in
                (kind, object, refused[CustomResources.label(object)].map { CustomResources.Verdict(problems: verdict.problems + $0) } ?? verdict)
            }
        }
        resources.sort { $0.id < $1.id }
        let services = cluster.specs(trustDomain: trustDomain)
        if published?.services != services || published?.resources != resources {
            published = (services, resources)
            await publisher.publish(services: services, resources: resources)
        }
        guard leading else { return }
        for (kind, object, verdict) in verdicts where !verdict.isRecorded(in: object) {
            await writeStatus(kind, object, verdict)
        }
    }

    /// Records the verdict in the object's status subresource. A conflict means a newer
    /// version is on its way through the watch, which brings its own verdict.
    private func writeStatus(_ kind: ResourceKind, _ object: JSONValue, _ verdict: CustomResources.Verdict) async {
        guard case .object(var fields) = object, let name = object["metadata"]?["name"]?.string else { return }
        let namespace = object["metadata"]?["namespace"]?.string ?? "default"
        var status: [String: JSONValue] = [:]
        if case .object(let existing)? = object["status"] { status = existing }
        var conditions: [JSONValue] = []
        if case .array(let existing)? = status["conditions"] { conditions = existing.filter { $0["type"]?.string != "Accepted" } }
        var generation: Int?
        if case .number(let value)? = object["metadata"]?["generation"] { generation = Int(value) }
        conditions.append(verdict.condition(generation: generation, now: Date()))
        status["conditions"] = .array(conditions)
        fields["status"] = .object(status)
        do {
            _ = try await client.send(.PUT, CustomResources.statusPath(kind, namespace: namespace, name: name), body: JSONValue.object(fields).data())
        } catch let error as KubernetesClient.APIError where error.status == 409 {
            return
        } catch {
            log("cannot write the status of \(kind.rawValue) \(namespace)/\(name): \(error)")
        }
    }
}
