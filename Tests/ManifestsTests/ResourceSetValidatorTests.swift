import Testing
import Manifests

/// Cross-document checks against an apply set and what is already stored.
@Suite struct ResourceSetValidatorTests {
    func resources(_ yaml: String, file: String = "apply.yaml") -> [Resource] {
        let decoded = ManifestDecoder.decode(yaml, file: file)
        #expect(decoded.problems.isEmpty)
        return decoded.resources
    }

    let stored = """
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: HTTPRouteGroup
        metadata: {name: reads}
        spec: {matches: [{name: get, methods: [GET]}]}
        ---
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: web-canary}
        spec: {service: web, backends: [{service: web-v1, weight: 1}]}
        """

    @Test func referencesResolveAgainstTheStore() {
        let validator = ResourceSetValidator(existing: resources(stored, file: "store"))
        let apply = resources("""
            apiVersion: split.smi-spec.io/v1alpha4
            kind: TrafficSplit
            metadata: {name: api-split}
            spec:
              service: api
              matches: [{kind: HTTPRouteGroup, name: reads}]
              backends: [{service: api-v1, weight: 1}]
            """)
        #expect(validator.validate(apply).isEmpty)
    }

    @Test func aSecondSplitForAStoredRootIsRefused() {
        let validator = ResourceSetValidator(existing: resources(stored, file: "store"))
        let apply = resources("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: another}
            spec: {service: web, backends: [{service: web-v2, weight: 1}]}
            """)
        #expect(validator.validate(apply).map(\.description) == [
            "apply.yaml:4: TrafficSplit/default/another: spec.service: TrafficSplit/default/web-canary already splits service \"web\" (store:6); one TrafficSplit per root service",
        ])
    }

    @Test func updatingTheSameSplitIsFine() {
        let validator = ResourceSetValidator(existing: resources(stored, file: "store"))
        let apply = resources("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: web-canary}
            spec: {service: web, backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: 1}]}
            """)
        #expect(validator.validate(apply).isEmpty)
    }

    @Test func namespacesSeparateRootsAndReferences() {
        let apply = resources("""
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: s, namespace: a}
            spec: {service: web, backends: [{service: web-v1, weight: 1}]}
            ---
            apiVersion: split.smi-spec.io/v1alpha4
            kind: TrafficSplit
            metadata: {name: s, namespace: b}
            spec:
              service: web
              matches: [{kind: HTTPRouteGroup, name: reads}]
              backends: [{service: web-v1, weight: 1}]
            """)
        let validator = ResourceSetValidator(existing: resources(stored, file: "store"))
        #expect(validator.validate(apply).map(\.description) == [
            "apply.yaml:11: TrafficSplit/b/s: spec.matches[0].name: unresolved reference: HTTPRouteGroup b/reads is neither in this apply set nor stored",
        ])
    }
}
