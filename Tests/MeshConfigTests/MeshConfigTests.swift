import Foundation
import Manifests
import MeshConfig
import Testing

/// A deterministic generator (SplitMix64) so split tests give the same picks every run.
struct SeededRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func load(_ text: String) throws -> StaticProxyConfig {
    switch StaticProxyConfig.parse(text, file: "proxy.yaml") {
    case .success(let config): return config
    case .failure(let problems): throw ConfigFailure(lines: problems.problems.map(\.description))
    }
}

func problems(_ text: String) -> [String] {
    switch StaticProxyConfig.parse(text, file: "proxy.yaml") {
    case .success: return []
    case .failure(let problems): return problems.problems.map(\.description)
    }
}

struct ConfigFailure: Error, CustomStringConvertible {
    var lines: [String]
    var description: String { lines.joined(separator: "\n") }
}

func snapshot(_ text: String) throws -> MeshSnapshot {
    let config = try load(text)
    return try MeshSnapshot.compile(version: 1, identity: config.identity ?? ServiceKey(name: "client"), services: config.services, resources: config.resources)
}

let canary = """
apiVersion: proxy.eino.dev/v1alpha1
kind: ProxyConfig
identity: {service: client, namespace: default}
services:
- name: web-v1
  endpoints:
  - address: 127.0.0.1:9001
- name: web-v2
  endpoints:
  - address: 127.0.0.1:9002
    identity: spiffe://cluster.local/ns/default/sa/web-v2
    labels: {version: v2}
- name: web-v3
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-canary}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 80}
  - {service: web-v2, weight: 20}
  - {service: web-v3, weight: 50}

"""

@Suite struct StaticConfigTests {
    @Test func readsIdentityServicesAndManifests() throws {
        let config = try load(canary)
        #expect(config.identity == ServiceKey(name: "client", namespace: "default"))
        #expect(config.services.map(\.key.name) == ["web-v1", "web-v2", "web-v3"])
        #expect(config.services[1].endpoints == [Endpoint(host: "127.0.0.1", port: 9002, identity: "spiffe://cluster.local/ns/default/sa/web-v2", labels: ["version": "v2"])])
        #expect(config.resources.count == 1)
    }

    @Test func reportsProblemsWithLines() {
        let text = """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client}
        colour: blue
        services:
        - name: web
          endpoints:
          - address: 127.0.0.1
          - address: "[::1]:99999"
        ---
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: s}
        spec: {service: web, backends: [{service: a, weight: 0}]}

        """
        #expect(problems(text) == [
            "proxy.yaml:4: ProxyConfig: colour: unknown field; allowed: apiVersion, clusterDomain, identity, kind, metadata, services, tls",
            "proxy.yaml:8: ProxyConfig: services[0].endpoints[0].address: expected host:port, got \"127.0.0.1\"",
            "proxy.yaml:9: ProxyConfig: services[0].endpoints[1].address: port must be a number from 0 to 65535, got \"99999\"",
            "proxy.yaml:14: TrafficSplit/default/s: spec.backends: every weight is 0; at least one backend needs a positive weight",
        ])
        let zeroWeights = text.replacingOccurrences(of: "colour: blue\n", with: "").replacingOccurrences(of: "127.0.0.1\n", with: "127.0.0.1:1\n").replacingOccurrences(of: "99999", with: "2")
        #expect(problems(zeroWeights) == [
            "proxy.yaml:13: TrafficSplit/default/s: spec.backends: every weight is 0; at least one backend needs a positive weight",
        ])
    }

    @Test func firstDocumentMustBeProxyConfig() {
        let text = """
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: s}
        spec: {service: web, backends: [{service: a, weight: 1}]}

        """
        #expect(problems(text) == ["proxy.yaml:2: ProxyConfig: kind: the first document must be a ProxyConfig, got \"TrafficSplit\""])
    }

    @Test func manifestProblemsKeepFileLines() {
        let text = canary.replacingOccurrences(of: "weight: 80", with: "weight: -80")
        let found = problems(text)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("proxy.yaml:21: TrafficSplit/default/web-canary: spec.backends[0].weight:") == true, "\(found)")
    }

    @Test func brokenRouteReferenceIsRejected() {
        let text = canary.replacingOccurrences(of: "apiVersion: split.smi-spec.io/v1alpha2", with: "apiVersion: split.smi-spec.io/v1alpha4")
            .replacingOccurrences(of: "  service: web\n", with: "  service: web\n  matches: [{kind: HTTPRouteGroup, name: missing}]\n")
        #expect(problems(text).count == 1)
    }
}

@Suite struct SnapshotTests {
    @Test func authorities() {
        for authority in ["web", "web:80", "web.default", "web.default.svc", "web.default.svc.cluster.local", "WEB.Default.svc.cluster.local:8080", "web.default.svc.cluster.local."] {
            #expect(Authority.serviceKey(authority, defaultNamespace: "default") == ServiceKey(name: "web", namespace: "default"), "\(authority)")
        }
        #expect(Authority.serviceKey("web", defaultNamespace: "shop") == ServiceKey(name: "web", namespace: "shop"))
        #expect(Authority.serviceKey("web.other:80", defaultNamespace: "shop") == ServiceKey(name: "web", namespace: "other"))
        #expect(Authority.serviceKey("web.default.cluster", defaultNamespace: "default") == nil)
        #expect(Authority.serviceKey("", defaultNamespace: "default") == nil)
        #expect(Authority.serviceKey("[::1]:80", defaultNamespace: "default") == nil)
        #expect(Authority.serviceKey("a..b", defaultNamespace: "default") == nil)
    }

    @Test func splitLandsWithinTwoPercentAndSkipsBackendsWithoutEndpoints() throws {
        let mesh = try snapshot(canary)
        let web = try #require(mesh.service(forAuthority: "web.default.svc.cluster.local:80"))
        var random = SeededRandom(state: 42)
        var counts: [String: Int] = [:]
        for _ in 0..<10_000 {
            guard case .service(let key) = web.route(method: "GET", path: "/", header: { _ in nil }, random: random.next()) else {
                Issue.record("no backend chosen")
                return
            }
            counts[key.name, default: 0] += 1
        }
        // web-v3 has weight 50 but no endpoints: 80/20 over the two that can serve.
        #expect(counts["web-v3"] == nil)
        #expect(abs(Double(counts["web-v1"] ?? 0) / 10_000 - 0.8) <= 0.02)
        #expect(abs(Double(counts["web-v2"] ?? 0) / 10_000 - 0.2) <= 0.02)
        #expect((counts["web-v1"] ?? 0) + (counts["web-v2"] ?? 0) == 10_000)
    }

    @Test func noEndpointsAnywhere() throws {
        let text = canary.replacingOccurrences(of: "  endpoints:\n  - address: 127.0.0.1:9001\n", with: "")
            .replacingOccurrences(of: "  endpoints:\n  - address: 127.0.0.1:9002\n    identity: spiffe://cluster.local/ns/default/sa/web-v2\n    labels: {version: v2}\n", with: "")
        let mesh = try snapshot(text)
        let web = try #require(mesh.service(forAuthority: "web"))
        #expect(web.route(method: "GET", path: "/", header: { _ in nil }, random: 7) == .noEndpoints)
        #expect(mesh.service(forAuthority: "nothing") == nil)
    }

    @Test func headerMatchedRouteGroupSplitsOnlyMatchingRequests() throws {
        let text = """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client}
        services:
        - name: web
          endpoints: [{address: "127.0.0.1:9000"}]
        - name: web-canary
          endpoints: [{address: "127.0.0.1:9003"}]
        ---
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: HTTPRouteGroup
        metadata: {name: canary-users}
        spec:
          matches:
          - name: canary-header
            headers: {x-canary: "true"}
          - name: beta-api
            pathRegex: "/api/v2/.*"
            methods: [POST]
            headers: {user-agent: ".*Firefox.*"}
        ---
        apiVersion: split.smi-spec.io/v1alpha4
        kind: TrafficSplit
        metadata: {name: web-split}
        spec:
          service: web
          matches: [{kind: HTTPRouteGroup, name: canary-users}]
          backends: [{service: web-canary, weight: 100}]

        """
        let mesh = try snapshot(text)
        let web = try #require(mesh.service(forAuthority: "web"))
        func target(_ method: String, _ uri: String, _ headers: [String: String]) -> String {
            guard case .service(let key) = web.route(method: method, path: requestPath(of: uri), header: { headers[$0] }, random: 3) else { return "none" }
            return key.name
        }
        #expect(target("GET", "/", ["x-canary": "true"]) == "web-canary")
        #expect(target("GET", "/", ["x-canary": "truer"]) == "web")
        #expect(target("GET", "/", [:]) == "web")
        #expect(target("POST", "/api/v2/items?x=1", ["user-agent": "Mozilla Firefox 1"]) == "web-canary")
        #expect(target("GET", "/api/v2/items", ["user-agent": "Mozilla Firefox 1"]) == "web")
        #expect(target("POST", "/api/v1/items", ["user-agent": "Mozilla Firefox 1"]) == "web")
        #expect(target("POST", "/api/v2/items", ["user-agent": "curl"]) == "web")
    }

    @Test func literalPatternsTakeTheFastPathAndAgreeWithRegex() throws {
        #expect("\(try TextMatcher.compile("/api/.*", anchoredPrefix: true))" == "prefix(/api/)")
        #expect("\(try TextMatcher.compile("^/login$", anchoredPrefix: true))" == "equals(/login)")
        #expect("\(try TextMatcher.compile("/a\\.b", anchoredPrefix: true))" == "prefix(/a.b)")
        #expect("\(try TextMatcher.compile("true", anchoredPrefix: false))" == "equals(true)")
        #expect("\(try TextMatcher.compile(".*", anchoredPrefix: false))" == "any")
        #expect("\(try TextMatcher.compile("/ab*", anchoredPrefix: true))" == "regex(/ab*)")
        #expect("\(try TextMatcher.compile("/a|/b", anchoredPrefix: true))" == "regex(/a|/b)")
        let cases: [(String, Bool, String)] = [
            ("/api/.*", true, "/api/x"), ("/api/.*", true, "/apix"), ("^/login$", true, "/login"),
            ("^/login$", true, "/login/x"), ("/a\\.b", true, "/a.bc"), ("/a\\.b", true, "/axb"),
            ("true", false, "true"), ("true", false, "true "), ("v[0-9]+", false, "v12"), ("v[0-9]+", false, "xv12"),
            ("/ab*", true, "/abbb"), ("/ab*", true, "/x"), ("\\d+", false, "123"),
        ]
        for (pattern, prefix, text) in cases {
            let fast = try TextMatcher.compile(pattern, anchoredPrefix: prefix).matches(text[...], anchoredPrefix: prefix)
            let regex = try Regex(pattern)
            let slow = prefix ? (try regex.prefixMatch(in: text)) != nil : (try regex.wholeMatch(in: text)) != nil
            #expect(fast == slow, "\(pattern) on \(text)")
        }
    }

    @Test func snapshotJSON() throws {
        let mesh = try snapshot(canary)
        let document = SnapshotDocument(mesh)
        #expect(document.version == 1)
        #expect(document.services.map(\.name) == ["web", "web-v1", "web-v2", "web-v3"])
        let split = try #require(document.services[0].split)
        #expect(split.backends.map(\.share) == [0.8, 0.2, 0])
        #expect(split.backends.map(\.serving) == [true, true, false])
        let text = String(decoding: document.json(), as: UTF8.self)
        #expect(text.contains("\"address\" : \"127.0.0.1:9001\""))
    }
}

@Suite struct ShippedExampleTests {
    @Test func staticExampleLoadsAndSplitsNinetyTen() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("manifests/static/proxy.yaml").path
        let config: StaticProxyConfig
        switch StaticProxyConfig.load(path: path) {
        case .success(let loaded): config = loaded
        case .failure(let problems): throw ConfigFailure(lines: problems.problems.map(\.description))
        }
        let mesh = try MeshSnapshot.compile(version: 1, identity: config.identity!, services: config.services, resources: config.resources)
        let split = try #require(mesh.services[ServiceKey(name: "web")]?.split)
        #expect(split.backends.map { split.share(of: $0) } == [0.9, 0.1, 0])
    }
}

@Suite struct ClusterIPTests {
    @Test func clusterIPsNameServicesAndAreChecked() throws {
        let text = """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client}
        services:
        - name: db
          clusterIP: 10.96.0.10
          endpoints: [{address: "127.0.0.1:5432"}]
        - name: cache
          clusterIP: "fd00::10"

        """
        let mesh = try snapshot(text)
        #expect(mesh.service(forClusterIP: "10.96.0.10")?.key == ServiceKey(name: "db"))
        #expect(mesh.service(forClusterIP: "fd00::10")?.key == ServiceKey(name: "cache"))
        #expect(mesh.service(forClusterIP: "10.96.0.11") == nil)
        #expect(mesh.service(forClusterIP: "10.96.0.10")?.routeConnection(random: 1) == .service(ServiceKey(name: "db")))
        #expect(problems(text.replacingOccurrences(of: "10.96.0.10", with: "db.local")) == [
            "proxy.yaml:6: ProxyConfig: services[0].clusterIP: must be an IPv4 or IPv6 address, got \"db.local\"",
        ])
    }

    /// A pod's IP names its service; one shared by two services' endpoints names none.
    @Test func endpointAddressesNameTheirService() throws {
        let mesh = try snapshot("""
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: client}
        services:
        - name: web
          endpoints: [{address: "10.213.0.2:7143"}, {address: "[FD00::2]:7143"}]
        - name: db
          clusterIP: 10.96.0.10
          endpoints: [{address: "10.213.0.9:7143"}, {address: "127.0.0.1:5432"}]
        - name: cache
          endpoints: [{address: "127.0.0.1:6379"}, {address: "10.96.0.10:6379"}]

        """)
        #expect(mesh.service(forDestination: "10.213.0.2")?.key == ServiceKey(name: "web"))
        #expect(mesh.service(forDestination: "fd00::2")?.key == ServiceKey(name: "web"))
        #expect(mesh.service(forDestination: "10.213.0.9")?.key == ServiceKey(name: "db"))
        // The virtual IP wins over an endpoint at the same address.
        #expect(mesh.service(forDestination: "10.96.0.10")?.key == ServiceKey(name: "db"))
        #expect(mesh.service(forDestination: "127.0.0.1") == nil)
        #expect(mesh.service(forDestination: "10.213.0.3") == nil)
    }
}

@Suite struct AppProtocolConfigTests {
    static let text = """
    apiVersion: proxy.eino.dev/v1alpha1
    kind: ProxyConfig
    identity: {service: client}
    services:
    - name: web
      endpoints: [{address: "127.0.0.1:8080"}]
    - name: api
      appProtocol: kubernetes.io/h2c
      endpoints: [{address: "127.0.0.1:8081"}]
    - name: rpc
      appProtocol: grpc

    """

    @Test func servicesDeclareWhatTheirAppsSpeak() throws {
        let mesh = try snapshot(Self.text)
        #expect(mesh.services[ServiceKey(name: "web")]?.appProtocol == .http)
        #expect(mesh.services[ServiceKey(name: "api")]?.appProtocol == .h2c)
        #expect(mesh.services[ServiceKey(name: "rpc")]?.appProtocol == .grpc)
        let document = SnapshotDocument(mesh)
        #expect(document.services.map { "\($0.name) \($0.appProtocol.rawValue)" } == ["api h2c", "rpc grpc", "web http"])
        #expect(problems(Self.text.replacingOccurrences(of: "appProtocol: grpc", with: "appProtocol: https")) == [
            "proxy.yaml:11: ProxyConfig: services[2].appProtocol: must be one of http, h2c (also kubernetes.io/h2c or http2), grpc, got \"https\"",
        ])
    }

    /// The wire leaves the default out, so what older proxies read is unchanged.
    @Test func theDefaultStaysOffTheWire() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let plain = try encoder.encode(ServiceSpec(key: ServiceKey(name: "web"), endpoints: [], appProtocol: .http))
        #expect(String(decoding: plain, as: UTF8.self) == #"{"endpoints":[],"key":{"name":"web","namespace":"default"},"labels":{}}"#)
        let old = try JSONDecoder().decode(ServiceSpec.self, from: plain)
        #expect(old.appProtocol == nil)
        let h2c = try JSONDecoder().decode(ServiceSpec.self, from: JSONEncoder().encode(ServiceSpec(key: ServiceKey(name: "api"), endpoints: [], appProtocol: .h2c)))
        #expect(h2c.appProtocol == .h2c)
    }

    /// A static config's manifests use its own cluster domain.
    @Test func theClusterDomainIsTheConfigs() throws {
        let split = """
        ---
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: s}
        spec: {service: front.default.svc.corp.example, backends: [{service: web, weight: 1}]}

        """
        let withDomain = Self.text.replacingOccurrences(of: "identity: {service: client}\n", with: "identity: {service: client}\nclusterDomain: corp.example\n")
        #expect(try snapshot(withDomain + split).services[ServiceKey(name: "front")]?.split?.backends.map(\.service) == [ServiceKey(name: "web")])
        #expect(problems(Self.text + split) == [
            #"proxy.yaml:16: TrafficSplit/default/s: spec.service: "front.default.svc.corp.example" ends in cluster domain "corp.example", but this mesh's is "cluster.local""#,
        ])
    }
}
