// Micro-benchmarks of the per-request pieces of the proxy, so a regression shows up per piece:
// split selection, route match (literal and regex patterns), header rewrite, the upstream
// protocol choice and HTTP/2 → HTTP/1.1 framing, snapshot and cache lookup, endpoint pick,
// metrics recording. Each piece is timed as the request path
// calls it, on inputs that vary per call, best of `--rounds` rounds. Run a release build
// pinned to one core; `make microbench` (bench/microbench.sh) does that and also counts
// allocations per call with valgrind (this program cannot see malloc itself).
//
//   eino-microbench [--only NAME] [--iterations N] [--rounds R] [--list]
//
// A scrape of one route (copy off the loop, merge, render) is printed last, for scale.
import MeshConfig
import NIOHTTP1
import Proxy
import Telemetry
#if canImport(Glibc)
import Glibc
#endif

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Says what is wrong on standard error (fd 2: the C `stderr` global is not concurrency-safe)
/// and exits 2.
func fail(_ message: String) -> Never {
    let line = Array("eino-microbench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

// MARK: fixtures: one snapshot as a client proxy compiles it from a static config

let config = """
apiVersion: proxy.eino.dev/v1alpha1
kind: ProxyConfig
identity: {service: client, namespace: default}
services:
- name: web-v1
  endpoints: [{address: 127.0.0.1:8081}, {address: 127.0.0.1:8082}, {address: 127.0.0.1:8083}]
- name: web-v2
  endpoints: [{address: 127.0.0.1:8084}]
- name: api-v1
  endpoints: [{address: 127.0.0.1:8085}]
- name: api-v2
  endpoints: [{address: 127.0.0.1:8086}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: canary}
spec:
  matches:
  - name: literal
    pathRegex: /api/.*
    methods: [GET]
    headers: {x-canary: "true"}
  - name: regex
    pathRegex: /users/[0-9]+/orders
    headers: {x-user: '[a-z]+@example\\.com'}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: api}
spec:
  service: api
  matches: [{kind: HTTPRouteGroup, name: canary}]
  backends: [{service: api-v1, weight: 50}, {service: api-v2, weight: 50}]
"""

let snapshot: MeshSnapshot
switch StaticProxyConfig.parse(config, file: "microbench.yaml") {
case .success(let parsed):
    do {
        snapshot = try MeshSnapshot.compile(version: 1, identity: parsed.identity ?? ServiceKey(name: "client"), services: parsed.services, resources: parsed.resources)
    } catch {
        fail("fixture does not compile: \(error)")
    }
case .failure(let problems):
    fail("fixture is invalid:\n\(problems)")
}
guard let web = snapshot.service(forAuthority: "web"), let webSplit = web.split,
      let api = snapshot.service(forAuthority: "api"), let apiRoutes = api.split?.httpRoutes,
      let literalMatch = apiRoutes.first(where: { $0.name == "literal" }),
      let regexMatch = apiRoutes.first(where: { $0.name == "regex" })
else { fail("fixture lacks its services") }

/// Request heads as an HTTP/1.1 client sends them; four, so inputs vary per call.
func requestHeaders(_ host: String, _ extra: [(String, String)]) -> HTTPHeaders {
    HTTPHeaders([("Host", host), ("User-Agent", "curl/7.88.1"), ("Accept", "*/*"), ("Connection", "keep-alive")] + extra)
}
let heads: [(path: Substring, headers: HTTPHeaders)] = [
    ("/api/v1/items", requestHeaders("api", [("X-Canary", "true")])),
    ("/users/1234/orders", requestHeaders("api", [("X-User", "ada@example.com")])),
    ("/api/v1/items", requestHeaders("api", [("X-Canary", "false")])),
    ("/index.html", requestHeaders("api", [])),
]
/// The same as HTTP/2 requests arrive for an HTTP/1.1 app: no content-length.
let requestHeads = heads.map { HTTPRequestHead(version: .http1_1, method: .GET, uri: String($0.path), headers: $0.headers) }
let authorities = ["web", "web:80", "web.default.svc.cluster.local", "api.default"]
let randoms: [UInt64] = (0..<1024).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 }

// MARK: the pieces

/// One piece: `run(i)` does one call with the i-th input and returns something derived
/// from its result, summed so the optimiser cannot drop the call.
struct Piece {
    var name: String
    var what: String
    var iterations: Int
    var run: (Int) -> Int
}

func choiceValue(_ choice: MeshService.Choice) -> Int {
    if case .service(let key) = choice { return key.name.utf8.count }
    return 0
}

var cache = AuthorityCache()
var costs = (0..<3).map { index -> PeakEWMA in
    var ewma = PeakEWMA()
    ewma.observe(rttNanos: UInt64(400_000 + index * 150_000), now: 1)
    ewma.outstanding = index
    return ewma
}
let loopMetrics = LoopMetrics()
let routeMetrics = loopMetrics.route(direction: "outbound", service: "web", backend: "web-v1", tls: true)
// Latencies spread over 0.2–20 ms (several buckets), statuses mostly 200 with some 503.
let latencies: [UInt64] = (0..<1024).map { UInt64(200_000 + ($0 * 7919 % 1024) * 19_336) }
let statuses: [Int] = (0..<1024).map { $0 % 10 == 0 ? 503 : 200 }
var rewritten = heads.map(\.headers)

let pieces: [Piece] = [
    Piece(name: "split.pick", what: "CompiledSplit.pick, 90/10", iterations: 5_000_000) { i in
        choiceValue(webSplit.pick(random: randoms[i & 1023]))
    },
    Piece(name: "route.split", what: "MeshService.route, split without route groups", iterations: 5_000_000) { i in
        let head = heads[i & 3]
        return choiceValue(web.route(method: "GET", path: head.path, header: { head.headers.first(name: $0) }, random: randoms[i & 1023]))
    },
    Piece(name: "match.literal", what: "CompiledMatch.matches, path /api/.* + header \"true\" (byte compare)", iterations: 5_000_000) { i in
        let head = heads[i & 3]
        return literalMatch.matches(method: "GET", path: head.path, header: { head.headers.first(name: $0) }) ? 1 : 0
    },
    Piece(name: "match.regex", what: "CompiledMatch.matches, path and header as Swift Regex", iterations: 200_000) { i in
        let head = heads[i & 3]
        return regexMatch.matches(method: "GET", path: head.path, header: { head.headers.first(name: $0) }) ? 1 : 0
    },
    Piece(name: "route.matches", what: "MeshService.route, split behind both route-group matches", iterations: 200_000) { i in
        let head = heads[i & 3]
        return choiceValue(api.route(method: "GET", path: head.path, header: { head.headers.first(name: $0) }, random: randoms[i & 1023]))
    },
    Piece(name: "headers.rewrite", what: "HopByHop.remove on a 5-field request head (Connection: keep-alive put back each call)", iterations: 2_000_000) { i in
        let slot = i & 3
        rewritten[slot].add(name: "Connection", value: "keep-alive")
        HopByHop.remove(from: &rewritten[slot], keepChunked: true)
        return rewritten[slot].count
    },
    Piece(name: "protocol.choice", what: "UpstreamProtocol.speaksHTTP2 for an app declared http (the gRPC content-type look-up)", iterations: 5_000_000) { i in
        UpstreamProtocol.speaksHTTP2(.http, heads[i & 3].headers) ? 1 : 0
    },
    Piece(name: "framing.downgrade", what: "DowngradeFraming on a bodyless HTTP/2 request for an HTTP/1.1 app (held head framed)", iterations: 2_000_000) { i in
        var head = requestHeads[i & 3]
        guard DowngradeFraming.needsDecision(head) else { return 0 }
        DowngradeFraming.frame(&head, contentFollows: false)
        return head.headers.count
    },
    Piece(name: "snapshot.lookup", what: "MeshSnapshot.service(forAuthority:), parsing the authority", iterations: 2_000_000) { i in
        snapshot.service(forAuthority: authorities[i & 3])?.endpoints.count ?? 0
    },
    Piece(name: "authority.cache", what: "AuthorityCache hit (LoopContext's, per request)", iterations: 5_000_000) { i in
        cache.service(forAuthority: authorities[i & 3], in: snapshot)?.endpoints.count ?? 0
    },
    Piece(name: "endpoint.pick", what: "PowerOfTwoChoices over 3 peak-EWMA costs", iterations: 5_000_000) { i in
        PowerOfTwoChoices.pick(count: 3, random: randoms[i & 1023]) { costs[$0].cost }
    },
    Piece(name: "metrics.record", what: "RouteMetrics.requestStarted + record (docs/telemetry.md)", iterations: 5_000_000) { i in
        let slot = i & 1023
        routeMetrics.requestStarted()
        routeMetrics.record(status: statuses[slot], latencyNanoseconds: latencies[slot], durationNanoseconds: latencies[slot] &+ 50_000)
        return slot
    },
]

// MARK: command line

var only: String?
var iterationsOverride: Int?
var rounds = 5
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--only":
        guard let name = arguments.popFirst() else { fail("--only needs a piece name") }
        only = name
    case "--iterations":
        guard let count = arguments.popFirst().flatMap({ Int($0) }), count >= 0 else { fail("--iterations needs a number") }
        iterationsOverride = count
    case "--rounds":
        guard let count = arguments.popFirst().flatMap({ Int($0) }), count > 0 else { fail("--rounds needs a number above 0") }
        rounds = count
    case "--list":
        for piece in pieces { print("\(piece.name)\t\(piece.what)") }
        exit(0)
    default: fail("unknown argument \(argument); usage: eino-microbench [--only NAME] [--iterations N] [--rounds R] [--list]")
    }
}
if let only, !pieces.contains(where: { $0.name == only }) { fail("no piece named \(only); --list shows them") }

var checksum = 0
for piece in pieces where only == nil || only == piece.name {
    let iterations = iterationsOverride ?? piece.iterations
    var best = Double.infinity
    for _ in 0..<rounds {
        let start = nanoseconds()
        for index in 0..<iterations { checksum &+= piece.run(index) }
        best = min(best, Double(nanoseconds() - start) / Double(max(1, iterations)))
    }
    print("\(piece.name)\t\((best * 10).rounded() / 10) ns/op\t(best of \(rounds) × \(iterations))\t\(piece.what)")
}

if only == nil {
    // A scrape of one route, for scale: copy off the loop, merge, render.
    let scrapeStart = nanoseconds()
    var length = 0
    for _ in 0..<1000 {
        var merged = MetricsSnapshot()
        merged.merge(loopMetrics.snapshot())
        length &+= merged.prometheusText().utf8.count
    }
    print("scrape of one route: \((Double(nanoseconds() - scrapeStart) / 1000 / 1000 * 10).rounded() / 10) µs (\(length / 1000) bytes of text)")
}
print("checksum \(checksum)")
