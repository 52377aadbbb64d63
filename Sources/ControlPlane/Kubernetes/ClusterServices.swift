import Kubernetes
import MeshConfig

/// The mesh's services as Kubernetes describes them: each Service with the endpoints of its
/// EndpointSlices (core Endpoints where a server has no slices). An endpoint whose Pod runs
/// the sidecar is a mesh endpoint, verified as the Pod's ServiceAccount; any other is plain.
struct ClusterServices: Sendable {
    var services: [Service] = []
    var slices: [EndpointSlice] = []
    var pods: [Pod] = []

    /// The name of the sidecar container `eino inject` and the webhook add.
    static let sidecarName = "eino-proxy"

    func specs(trustDomain: String) -> [ServiceSpec] {
        var podsByKey: [String: Pod] = [:]
        for pod in pods { podsByKey["\(pod.metadata.namespace ?? "default")/\(pod.metadata.name)"] = pod }
        var endpointsByService: [ServiceKey: [Endpoint]] = [:]
        for slice in slices {
            guard let name = slice.serviceName, let port = slice.ports?.first?.port else { continue }
            let namespace = slice.metadata.namespace ?? "default"
            for endpoint in slice.endpoints ?? [] where endpoint.conditions?.ready != false {
                var identity: String?
                if let reference = endpoint.targetRef, reference.kind == "Pod", let podName = reference.name,
                   let pod = podsByKey["\(reference.namespace ?? namespace)/\(podName)"], pod.runsSidecar {
                    identity = "spiffe://\(trustDomain)/ns/\(pod.metadata.namespace ?? namespace)/sa/\(pod.spec?.serviceAccountName ?? "default")"
                }
                for address in endpoint.addresses {
                    endpointsByService[ServiceKey(name: name, namespace: namespace), default: []]
                        .append(Endpoint(host: address, port: port, identity: identity))
                }
            }
        }
        return services.map { service in
            let key = ServiceKey(name: service.metadata.name, namespace: service.metadata.namespace ?? "default")
            let declared = service.spec?.ports?.lazy.compactMap { $0.appProtocol.flatMap(AppProtocol.init(declared:)) }.first
            let clusterIP = service.spec?.clusterIP.flatMap { $0 == "None" || $0.isEmpty ? nil : $0 }
            let endpoints = (endpointsByService[key] ?? []).sorted { $0.address < $1.address }
            return ServiceSpec(key: key, endpoints: endpoints, labels: service.metadata.labels ?? [:], clusterIP: clusterIP, appProtocol: declared)
        }.sorted { $0.key < $1.key }
    }
}

extension Pod {
    var runsSidecar: Bool {
        (spec?.containers ?? []).contains { $0.name == ClusterServices.sidecarName }
            || (spec?.initContainers ?? []).contains { $0.name == ClusterServices.sidecarName }
    }
}
