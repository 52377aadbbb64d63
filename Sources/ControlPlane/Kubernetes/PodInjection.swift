import Deploy
import Foundation
import Kubernetes
import Yams

/// The mutating webhook's decision for one Pod, made by the same code as `eino inject`
/// (``Injector``): a Pod whose namespace is labelled or annotated `eino.dev/inject: enabled`,
/// or that is annotated so itself, gets the init container and the sidecar, with its
/// ServiceAccount's projected token and the trust anchor. `disabled` on the Pod wins; a
/// Pod that already has the sidecar is left as it is.
enum PodInjection {
    /// A JSON Patch for `pod`, or nil to admit it unchanged.
    static func patch(for pod: JSONValue, namespaceWantsInjection: Bool, options: InjectionOptions) throws -> Data? {
        let annotation = pod["metadata"]?["annotations"]?[Injector.injectAnnotation]?.string?.lowercased()
        guard annotation == "enabled" || (namespaceWantsInjection && annotation == nil) else { return nil }
        let containers = [pod["spec"]?["containers"], pod["spec"]?["initContainers"]].compactMap { value -> [JSONValue]? in
            if case .array(let items)? = value { items } else { nil }
        }.joined()
        if containers.contains(where: { $0["name"]?.string == Injector.proxyName }) { return nil }

        // JSON is YAML: the injector reads the Pod as `eino inject` reads a file.
        let result = try Injector.inject(String(decoding: pod.data(), as: UTF8.self), source: "admission", options: options)
        guard let loaded = try Yams.load(yaml: result.output) as? [String: Any], let spec = loaded["spec"] else { return nil }
        let specJSON = try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys])
        let value = try JSONDecoder().decode(JSONValue.self, from: specJSON)
        guard value != pod["spec"] else { return nil }
        return JSONValue.array([.object(["op": .string("replace"), "path": .string("/spec"), "value": value])]).data()
    }

    /// Whether a namespace asks for injection, by label or annotation.
    static func namespaceWantsInjection(_ namespace: JSONValue?) -> Bool {
        let key = Injector.injectAnnotation
        return [namespace?["metadata"]?["labels"]?[key], namespace?["metadata"]?["annotations"]?[key]]
            .contains { $0?.string?.lowercased() == "enabled" }
    }
}
