// The per-request cost of recording proxy metrics (docs/telemetry.md, "Cost of recording"):
// times what HTTPProxyHandler does per exchange — `requestStarted` and `record` on a cached
// route handle. It allocates nothing (a fixed counter buffer per route). Run a release build:
//   swift build -c release --product eino-microbench && .build/release/eino-microbench
import Telemetry
#if canImport(Glibc)
import Glibc
#endif

let iterations = 20_000_000
let rounds = 5

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

let loop = LoopMetrics()
let route = loop.route(direction: "outbound", service: "web", backend: "web-v1", tls: true)
// Latencies spread over 0.2–20 ms (several buckets), statuses mostly 200 with some 503.
let latencies: [UInt64] = (0..<1024).map { UInt64(200_000 + ($0 * 7919 % 1024) * 19_336) }
let statuses: [Int] = (0..<1024).map { $0 % 10 == 0 ? 503 : 200 }

var best = Double.infinity
for _ in 0..<rounds {
    let start = nanoseconds()
    for index in 0..<iterations {
        let slot = index & 1023
        route.requestStarted()
        route.record(status: statuses[slot], latencyNanoseconds: latencies[slot], durationNanoseconds: latencies[slot] &+ 50_000)
    }
    let elapsed = nanoseconds() - start
    best = min(best, Double(elapsed) / Double(iterations))
}
let counted = loop.snapshot().responses(direction: "outbound", service: "web", backend: "web-v1")
print("record: \((best * 100).rounded() / 100) ns/op (best of \(rounds) × \(iterations)), responses \(counted)")

// A scrape of one route, for scale: copy off the loop, merge, render.
let scrapeStart = nanoseconds()
var length = 0
for _ in 0..<1000 {
    var merged = MetricsSnapshot()
    merged.merge(loop.snapshot())
    length &+= merged.prometheusText().utf8.count
}
print("scrape of one route: \((Double(nanoseconds() - scrapeStart) / 1000 / 1000 * 10).rounded() / 10) µs (\(length / 1000) bytes of text)")
