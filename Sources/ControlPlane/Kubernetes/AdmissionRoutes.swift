import Deploy
import Foundation
import Hummingbird
import Kubernetes
import Manifests

/// The admission webhooks (AdmissionReview v1), called by the API server: injection of the
/// sidecar into Pods, and validation of Eino's resources by the same checks as
/// `eino validate` (with field paths; there are no lines). A review that cannot be read is
/// refused, never admitted unchecked.
enum AdmissionRoutes {
    static func add(to router: Router<ControlRequestContext>, source: KubernetesSource, injection: InjectionOptions, clusterDomain: String,
                    log: @escaping @Sendable (String) -> Void) {
        router.post("/v1/webhooks/inject") { request, context -> Response in
            let review = try await request.decode(as: AdmissionReview.self, context: context)
            guard let admission = review.request else { return malformed() }
            guard let pod = admission.object else { return answer(.init(uid: admission.uid, allowed: true)) }
            let namespace = await source.namespace(admission.namespace ?? "default")
            do {
                let patch = try PodInjection.patch(for: pod, namespaceWantsInjection: PodInjection.namespaceWantsInjection(namespace), options: injection)
                return answer(.init(uid: admission.uid, allowed: true, patch: patch))
            } catch {
                log("cannot inject pod \(admission.namespace ?? "")/\(pod["metadata"]?["name"]?.string ?? pod["metadata"]?["generateName"]?.string ?? "?"): \(error)")
                return answer(.init(uid: admission.uid, allowed: false, message: "eino: cannot inject the sidecar: \(error)"))
            }
        }

        router.post("/v1/webhooks/validate") { request, context -> Response in
            let review = try await request.decode(as: AdmissionReview.self, context: context)
            guard let admission = review.request else { return malformed() }
            guard let object = admission.object else { return answer(.init(uid: admission.uid, allowed: true)) }
            switch CustomResources.decode(object, clusterDomain: clusterDomain) {
            case .failure(let verdict):
                return answer(.init(uid: admission.uid, allowed: false, message: verdict.message))
            case .success(let resource):
                // What only the whole set shows, against what the mesh enforces now.
                let others = await source.acceptedResources().filter { $0.id != resource.id }
                let problems = ResourceSetValidator().validate(others + [resource]).filter { $0.resource == resource.id.description }
                if !problems.isEmpty {
                    return answer(.init(uid: admission.uid, allowed: false, message: CustomResources.Verdict(problems: problems).message))
                }
                return answer(.init(uid: admission.uid, allowed: true))
            }
        }
    }

    private static func answer(_ response: AdmissionReview.Response) -> Response {
        .json(AdmissionReview(response: response))
    }

    private static func malformed() -> Response {
        .json(ControlAPI.ErrorResponse(error: "bad_request", message: "not an AdmissionReview request"), status: .badRequest)
    }
}
