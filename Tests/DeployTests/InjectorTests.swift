import Deploy
import Testing
import Yams

@Suite struct InjectorTests {
    static let options = InjectionOptions(image: "eino:test", control: "https://control:7443")

    static func pod(_ kind: String, annotations: String = "", extraSpec: String = "") -> String {
        let spec = """
        containers:
        - name: app
          image: app:1
          ports:
          - containerPort: 8080
        \(extraSpec)
        """
        let meta = annotations.isEmpty ? "labels: {app: shop}" : "labels: {app: shop}\nannotations:\n\(indent(annotations, 2))"
        switch kind {
        case "Pod":
            return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shop\n\(indent(meta, 2))\nspec:\n\(indent(spec, 2))\n"
        case "CronJob":
            return "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: shop\nspec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n\(indent(meta, 10))\n        spec:\n\(indent(spec, 10))\n"
        default:
            return "apiVersion: apps/v1\nkind: \(kind)\nmetadata:\n  name: shop\nspec:\n  template:\n    metadata:\n\(indent(meta, 6))\n    spec:\n\(indent(spec, 6))\n"
        }
    }

    static func indent(_ text: String, _ count: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : String(repeating: " ", count: count) + $0 }.joined(separator: "\n")
    }

    static func podSpec(_ yaml: String, kind: String) throws -> Node {
        let node = try #require(try Yams.compose(yaml: yaml))
        switch kind {
        case "Pod": return try #require(node["spec"])
        case "CronJob": return try #require(node["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"])
        default: return try #require(node["spec"]?["template"]?["spec"])
        }
    }

    static func names(_ list: Node?) -> [String] {
        (list?.sequence.map(Array.init) ?? []).compactMap { $0["name"]?.string }
    }

    @Test(arguments: ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"])
    func everyWorkloadKindGetsTheInitContainerAndTheSidecar(kind: String) throws {
        let result = try Injector.inject(Self.pod(kind), source: "t.yaml", options: Self.options)
        let spec = try Self.podSpec(result.output, kind: kind)
        #expect(Self.names(spec["initContainers"]) == ["eino-init"])
        #expect(Self.names(spec["containers"]) == ["eino-proxy", "app"])
        let proxy = try #require(spec["containers"]?[0])
        #expect(proxy["securityContext"]?["runAsUser"]?.int == 7102)
        #expect(proxy["args"]?.sequence?.compactMap(\.string) == [
            "proxy", "--control", "https://control:7443", "--service", "shop", "--namespace", "$(POD_NAMESPACE)",
            "--ca-file", "/var/run/eino/ca/ca.pem", "--join-token-file", "/var/run/eino/join/token", "--advertise", "$(POD_IP):7143",
            "--app", "127.0.0.1:8080",
        ])
        #expect(Self.names(spec["volumes"]) == ["eino-ca", "eino-join"])
        #expect(spec["volumes"]?[1]?["secret"]?["secretName"]?.string == "eino-join-shop")
        #expect(Self.names(proxy["volumeMounts"]) == ["eino-ca", "eino-join"])
        let env = proxy["env"]?.sequence.map(Array.init) ?? []
        #expect(env.compactMap { $0["name"]?.string } == ["POD_NAME", "POD_NAMESPACE", "POD_SERVICE_ACCOUNT", "POD_IP"])
        #expect(env.compactMap { $0["valueFrom"]?["fieldRef"]?["fieldPath"]?.string } == ["metadata.name", "metadata.namespace", "spec.serviceAccountName", "status.podIP"])
        #expect(proxy["readinessProbe"]?["exec"]?["command"]?.sequence?.compactMap(\.string).contains("wait-ready") == true)
        #expect(proxy["livenessProbe"]?["exec"]?["command"]?.sequence?.compactMap(\.string).contains("/live") == true)
        #expect(proxy["lifecycle"]?["postStart"] != nil)
        // Only the init container may change the network.
        let initContainer = try #require(spec["initContainers"]?[0])
        #expect(initContainer["securityContext"]?["capabilities"]?["add"]?.sequence?.compactMap(\.string) == ["NET_ADMIN", "NET_RAW"])
        #expect(proxy["securityContext"]?["capabilities"]?["add"] == nil)
        #expect(initContainer["args"]?.sequence?.compactMap(\.string) == ["init", "--proxy-uid", "7102", "--admin-port", "7191"])
        #expect(result.notes.isEmpty)
    }

    @Test(arguments: [false, true])
    func reinjectingIsByteIdentical(native: Bool) throws {
        var options = Self.options
        options.nativeSidecar = native
        let input = ["Deployment", "Pod", "Job"].map { Self.pod($0) }.joined(separator: "---\n")
        let once = try Injector.inject(input, source: "t.yaml", options: options).output
        let twice = try Injector.inject(once, source: "t.yaml", options: options).output
        #expect(once != input)
        #expect(twice == once)
    }

    @Test func theAppsVolumesStayAndOursAreAddedOnce() throws {
        let input = Self.pod("StatefulSet", extraSpec: "volumes:\n- name: data\n  emptyDir: {}")
        let once = try Injector.inject(input, source: "t.yaml", options: Self.options).output
        #expect(Self.names(try Self.podSpec(once, kind: "StatefulSet")["volumes"]) == ["data", "eino-ca", "eino-join"])
        #expect(try Injector.inject(once, source: "t.yaml", options: Self.options).output == once)
    }

    @Test func otherKindsAndCommentsPassThroughByteForByte() throws {
        let input = """
        # leading comment
        apiVersion: v1
        kind: Service
        metadata: {name: shop}   # flow style stays
        spec:
          ports: [{port: 80}]
        ---
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: s}
        spec: {service: web, backends: [{service: a, weight: 1}]}
        --- # a comment on the separator
        ---
        kind: Deployment
        metadata: {name: not-a-template}
        spec: {}

        """
        let result = try Injector.inject(input, source: "t.yaml", options: Self.options)
        #expect(result.output == input)
    }

    @Test func disabledAndHostNetworkPodsAreLeftAloneWithANote() throws {
        let disabled = Self.pod("Deployment", annotations: "eino.dev/inject: disabled")
        let host = Self.pod("Pod", extraSpec: "hostNetwork: true")
        let input = disabled + "---\n" + host
        let result = try Injector.inject(input, source: "t.yaml", options: Self.options)
        #expect(result.output == input)
        #expect(result.notes.count == 2)
        #expect(result.notes[0].contains("Deployment/shop: eino.dev/inject is disabled"))
        #expect(result.notes[1].contains("hostNetwork"))
    }

    @Test func skipAnnotationsBecomeInitFlags() throws {
        let input = Self.pod("Deployment", annotations: "eino.dev/skip-outbound-ports: \"5432, 6379\"\neino.dev/skip-inbound-ports: \"9090-9091\"\neino.dev/service: checkout")
        let spec = try Self.podSpec(try Injector.inject(input, source: "t.yaml", options: Self.options).output, kind: "Deployment")
        #expect(spec["initContainers"]?[0]?["args"]?.sequence?.compactMap(\.string) == [
            "init", "--proxy-uid", "7102", "--admin-port", "7191", "--skip-outbound-ports", "5432,6379", "--skip-inbound-ports", "9090:9091",
        ])
        #expect(spec["containers"]?[0]?["args"]?[4]?.string == "checkout")
    }

    @Test func aBadAnnotationIsAnErrorWithItsPlace() throws {
        let input = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + Self.pod("Pod", annotations: "eino.dev/skip-outbound-ports: postgres")
        #expect {
            try Injector.inject(input, source: "t.yaml", options: Self.options)
        } throws: { error in
            "\(error)".contains("t.yaml:5: Pod/shop: annotation eino.dev/skip-outbound-ports")
        }
    }

    @Test func nativeSidecarIsAnInitContainerThatRestarts() throws {
        var options = Self.options
        options.nativeSidecar = true
        let input = Self.pod("Deployment", extraSpec: "initContainers:\n- name: migrate\n  image: app:1")
        let spec = try Self.podSpec(try Injector.inject(input, source: "t.yaml", options: options).output, kind: "Deployment")
        #expect(Self.names(spec["initContainers"]) == ["eino-init", "eino-proxy", "migrate"])
        #expect(Self.names(spec["containers"]) == ["app"])
        let proxy = try #require(spec["initContainers"]?[1])
        #expect(proxy["restartPolicy"]?.string == "Always")
        #expect(proxy["startupProbe"] != nil)
        #expect(proxy["lifecycle"] == nil)
    }

    @Test func classicPutsInitLastAndSwitchingModesReinjects() throws {
        let input = Self.pod("Deployment", extraSpec: "initContainers:\n- name: migrate\n  image: app:1")
        let classic = try Injector.inject(input, source: "t.yaml", options: Self.options).output
        #expect(Self.names(try Self.podSpec(classic, kind: "Deployment")["initContainers"]) == ["migrate", "eino-init"])
        var native = Self.options
        native.nativeSidecar = true
        let switched = try Self.podSpec(try Injector.inject(classic, source: "t.yaml", options: native).output, kind: "Deployment")
        #expect(Self.names(switched["initContainers"]) == ["eino-init", "eino-proxy", "migrate"])
        #expect(Self.names(switched["containers"]) == ["app"])
    }

    @Test func invalidYAMLNamesTheDocument() throws {
        #expect {
            try Injector.inject("kind: ConfigMap\n---\nkind: [unclosed\n", source: "bad.yaml", options: Self.options)
        } throws: { error in
            "\(error)".hasPrefix("bad.yaml:3: not valid YAML")
        }
    }
}
