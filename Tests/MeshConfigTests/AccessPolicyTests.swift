import Manifests
import MeshConfig
import Testing

/// TrafficTarget authorization compiled from a static config, checked without sockets.
@Suite struct AccessPolicyTests {
    static let header = """
    apiVersion: proxy.eino.dev/v1alpha1
    kind: ProxyConfig
    identity: {service: web, namespace: default}
    services: []
    ---
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: HTTPRouteGroup
    metadata: {name: web-routes}
    spec:
      matches:
      - name: reads
        pathRegex: /api/.*
        methods: [GET]
      - name: admin
        pathRegex: /admin
        headers: {x-admin: "yes|true"}
    ---
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: TCPRoute
    metadata: {name: postgres}
    spec:
      matches:
        ports: [5432]
    ---
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: TCPRoute
    metadata: {name: any-port}
    spec: {}

    """

    static func target(_ name: String, destination: String = "web", port: Int? = nil, sources: [String], rules: String) -> String {
        """
        ---
        apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: {name: \(name)}
        spec:
          destination: {kind: ServiceAccount, name: \(destination), namespace: default\(port.map { ", port: \($0)" } ?? "")}
          sources: [\(sources.map { "{kind: ServiceAccount, name: \($0), namespace: default}" }.joined(separator: ", "))]
          rules: \(rules)

        """
    }

    static func policy(_ targets: String...) throws -> AccessPolicy? {
        try snapshot(header + targets.joined()).accessPolicy
    }

    static let client = ServiceKey(name: "client")
    static let other = ServiceKey(name: "other")

    func http(_ policy: AccessPolicy, _ source: ServiceKey?, _ method: String, _ uri: String, _ headers: [String: String] = [:], port: Int = 8080) -> Bool {
        policy.admitsRequest(from: source, port: port, method: method, path: requestPath(of: uri), header: { headers[$0] })
    }

    @Test func noTrafficTargetForThisIdentityMeansNoPolicy() throws {
        #expect(try Self.policy() == nil)
        #expect(try Self.policy(Self.target("db-access", destination: "db", sources: ["client"], rules: "[{kind: TCPRoute, name: any-port}]")) == nil)
    }

    @Test func namedMatchesAdmitOnlyThoseRequests() throws {
        let policy = try #require(try Self.policy(Self.target("reads", sources: ["client"],
            rules: "[{kind: HTTPRouteGroup, name: web-routes, matches: [reads]}]")))
        #expect(http(policy, Self.client, "GET", "/api/items?x=1"))
        #expect(!http(policy, Self.client, "POST", "/api/items"))
        #expect(!http(policy, Self.client, "GET", "/other"))
        // The group's other match is not named: not admitted.
        #expect(!http(policy, Self.client, "GET", "/admin", ["x-admin": "yes"]))
        // Not a listed source, or no verified identity at all.
        #expect(!http(policy, Self.other, "GET", "/api/items"))
        #expect(!http(policy, nil, "GET", "/api/items"))
        // An HTTPRouteGroup rule never admits opaque TCP.
        #expect(!policy.admitsConnection(from: Self.client, port: 8080))
    }

    @Test func aRuleWithoutMatchesAdmitsAnyMatchOfTheGroup() throws {
        let policy = try #require(try Self.policy(Self.target("all-routes", sources: ["client"],
            rules: "[{kind: HTTPRouteGroup, name: web-routes}]")))
        #expect(http(policy, Self.client, "GET", "/api/items"))
        #expect(http(policy, Self.client, "DELETE", "/admin/users", ["x-admin": "true"]))
        #expect(!http(policy, Self.client, "DELETE", "/admin/users", ["x-admin": "no"]))
        #expect(!http(policy, Self.client, "DELETE", "/admin/users"))
        #expect(!http(policy, Self.client, "POST", "/api/items"))
    }

    @Test func aTCPRouteRuleAdmitsConnectionsAndRequestsOnItsPorts() throws {
        let policy = try #require(try Self.policy(Self.target("pg", sources: ["client"],
            rules: "[{kind: TCPRoute, name: postgres}]")))
        #expect(policy.admitsConnection(from: Self.client, port: 5432))
        #expect(!policy.admitsConnection(from: Self.client, port: 5433))
        #expect(!policy.admitsConnection(from: Self.other, port: 5432))
        #expect(!policy.admitsConnection(from: nil, port: 5432))
        // HTTP is TCP traffic too: any request on the route's ports.
        #expect(http(policy, Self.client, "POST", "/anything", port: 5432))
        #expect(!http(policy, Self.client, "POST", "/anything", port: 8080))
        let anyPort = try #require(try Self.policy(Self.target("all", sources: ["client"],
            rules: "[{kind: TCPRoute, name: any-port}]")))
        #expect(anyPort.admitsConnection(from: Self.client, port: 1))
        #expect(http(anyPort, Self.client, "PUT", "/", port: 65535))
    }

    @Test func targetsAddUpAndADestinationPortNarrowsOne() throws {
        let policy = try #require(try Self.policy(
            Self.target("reads", sources: ["client"], rules: "[{kind: HTTPRouteGroup, name: web-routes, matches: [reads]}]"),
            Self.target("tcp", port: 9000, sources: ["client", "other"], rules: "[{kind: TCPRoute, name: any-port}]")))
        #expect(http(policy, Self.client, "GET", "/api/x", port: 8080))
        #expect(!http(policy, Self.client, "POST", "/api/x", port: 8080))
        #expect(http(policy, Self.client, "POST", "/api/x", port: 9000))
        #expect(!http(policy, Self.other, "GET", "/api/x", port: 8080))
        #expect(http(policy, Self.other, "GET", "/api/x", port: 9000))
        #expect(policy.admitsConnection(from: Self.other, port: 9000))
        #expect(!policy.admitsConnection(from: Self.other, port: 8080))
    }

    @Test func aRuleWhoseRouteGroupIsGoneAdmitsNothing() throws {
        // Validation refuses such a set; a control plane's store could still lose the group
        // later. The target keeps naming `web`, so the policy fails closed.
        let config = try load(Self.header + Self.target("reads", sources: ["client"],
            rules: "[{kind: HTTPRouteGroup, name: web-routes}]"))
        let resources = config.resources.filter { $0.kind != .httpRouteGroup }
        let mesh = try MeshSnapshot.compile(version: 1, identity: ServiceKey(name: "web"), services: [], resources: resources)
        let policy = try #require(mesh.accessPolicy)
        #expect(!http(policy, Self.client, "GET", "/api/items"))
        #expect(!policy.admitsConnection(from: Self.client, port: 8080))
    }
}
