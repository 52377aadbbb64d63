import EinoTestSupport
import Foundation
import Testing

/// `make bench-kubernetes`: the control plane's memory and CPU with 1,000 Services and
/// 10,000 endpoints in a real API server, and how long until a proxy holds all of them.
/// A measurement, not a test: it runs only with EINO_BENCH_KUBERNETES=1 and prints figures.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["EINO_BENCH_KUBERNETES"] == "1"))
struct KubernetesScaleBenchmark {
    static let services = 1000
    static let endpointsPerService = 10

    /// Creates the objects with one curl over one keep-alive connection (`--next` between them).
    static func createAll(_ kube: KubeAPIServer, _ objects: [(path: String, json: String)]) throws {
        let directory = kube.directory.appendingPathComponent("objects-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments: [String] = []
        for (index, object) in objects.enumerated() {
            let file = directory.appendingPathComponent("\(index).json")
            try object.json.write(to: file, atomically: false, encoding: .utf8)
            if index > 0 { arguments.append("--next") }
            arguments += ["-sk", "-o", "/dev/null", "-w", "%{http_code}\\n", "-X", "POST", "-H", "Authorization: Bearer \(kube.adminToken)",
                          "-H", "Content-Type: application/json", "--data-binary", "@\(file.path)", kube.url + object.path]
        }
        let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), arguments)
        let failed = output.stdoutLines.filter { $0 != "201" }
        #expect(failed.isEmpty, "\(failed.count) objects not created: \(Set(failed))")
    }

    static func procStatus(_ pid: Int32) throws -> (rssMiB: Double, peakMiB: Double, cpuSeconds: Double) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kib(_ field: String) -> Double {
            let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
            return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)  // utime, stime
        return (kib("VmRSS") / 1024, kib("VmHWM") / 1024, ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    @Test func thousandServicesTenThousandEndpoints() throws {
        let (kube, port) = try KubernetesTests.installedRig()
        try kube.create(yaml: """
            apiVersion: v1
            kind: Namespace
            metadata: {name: scale}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: client, namespace: scale}
            """) { KubernetesTests.collection($0, namespace: "scale") }
        var objects: [(String, String)] = []
        for index in 0..<Self.services {
            objects.append(("/api/v1/namespaces/scale/services",
                            #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-\#(index)","namespace":"scale"},"spec":{"ports":[{"port":80}]}}"#))
            let endpoints = (0..<Self.endpointsPerService).map { #"{"addresses":["10.\#(index / 250).\#(index % 250).\#($0 + 1)"],"conditions":{"ready":true}}"# }
            objects.append(("/apis/discovery.k8s.io/v1beta1/namespaces/scale/endpointslices",
                            #"{"apiVersion":"discovery.k8s.io/v1beta1","kind":"EndpointSlice","metadata":{"name":"svc-\#(index)-a","namespace":"scale","labels":{"kubernetes.io/service-name":"svc-\#(index)"}},"addressType":"IPv4","ports":[{"port":8080}],"endpoints":[\#(endpoints.joined(separator: ","))]}"#))
        }
        let creating = Date()
        try Self.createAll(kube, objects)
        print("created \(Self.services) Services and \(Self.services) EndpointSlices (\(Self.services * Self.endpointsPerService) endpoints) in \(Int(Date().timeIntervalSince(creating))) s")

        let token = try kube.token(namespace: "eino-system", serviceAccount: "eino-control", audience: "https://kubernetes.default.svc")
        let started = Date()
        let control = try ServerProcess.eino(["control", "--kubernetes", "--kubeconfig", try kube.kubeconfig(token: token, name: "eino-control"),
                                              "--listen", "127.0.0.1:\(port)"])
        defer { control.terminate() }
        let url = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
        let caFile = try KubernetesTests.trustAnchorFile(kube)
        let tokenFile = kube.directory.appendingPathComponent("client.token")
        try kube.token(namespace: "scale", serviceAccount: "client", audience: "identity.eino.dev").write(to: tokenFile, atomically: true, encoding: .utf8)
        let proxy = try ServerProcess.eino(["proxy", "--service", "client", "--namespace", "scale", "--app", "127.0.0.1:9", "--control", url,
                                            "--identity-token-file", tokenFile.path, "--ca-file", caFile.path,
                                            "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        defer { proxy.terminate() }
        let admin = try proxy.readyValue("admin", prefix: "eino proxy ready")
        _ = try poll(timeout: 300, "the proxy to hold every service") {
            let config = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), ["-s", "http://\(admin)/config"]).stdout
            return config.contains("\"name\" : \"svc-\(Self.services - 1)\"") && config.contains("10.3.249.10") ? true : nil
        }
        let synced = Date().timeIntervalSince(started)
        let atSync = try Self.procStatus(control.process.processIdentifier)
        let proxyAtSync = try Self.procStatus(proxy.process.processIdentifier)
        // Ten quiet seconds: what an idle control plane of this size costs.
        Thread.sleep(forTimeInterval: 10)
        let idle = try Self.procStatus(control.process.processIdentifier)
        print(String(format: "control plane start → a proxy holds all %d services: %.1f s", Self.services, synced))
        print(String(format: "control plane: RSS %.1f MiB (peak %.1f MiB), CPU %.2f s to sync, %.3f s over the next 10 s idle",
                     idle.rssMiB, idle.peakMiB, atSync.cpuSeconds, idle.cpuSeconds - atSync.cpuSeconds))
        print(String(format: "proxy holding them: RSS %.1f MiB (peak %.1f MiB), CPU %.2f s", proxyAtSync.rssMiB, proxyAtSync.peakMiB, proxyAtSync.cpuSeconds))
    }
}
