import Telemetry
import Testing

@Suite struct MetricsTests {
    @Test func loopsCountAloneAndMergeOnScrape() {
        let first = LoopMetrics(), second = LoopMetrics()
        let v1 = first.route(direction: "outbound", service: "web", backend: "web-v1", tls: true)
        v1.requestStarted()
        v1.record(status: 200, latencyNanoseconds: 600_000, durationNanoseconds: 700_000)
        let v1Again = second.route(direction: "outbound", service: "web", backend: "web-v1", tls: true)
        v1Again.requestStarted()
        v1Again.record(status: 200, latencyNanoseconds: 3_000_000, durationNanoseconds: 20_000_000)
        let v2 = second.route(direction: "outbound", service: "web", backend: "web-v2", tls: false)
        v2.requestStarted()
        v2.requestStarted()
        v2.record(status: 502, latencyNanoseconds: 100_000, durationNanoseconds: 100_000, failure: true)
        // A 403 the proxy made itself is a failure; a 404 from the app is not.
        v2.record(status: 403, latencyNanoseconds: 100_000, durationNanoseconds: 100_000, failure: true)
        v2.record(status: 404, latencyNanoseconds: 100_000, durationNanoseconds: 100_000)
        first.connectionOpened(direction: "outbound")
        second.connectionOpened(direction: "outbound")
        second.connectionClosed(direction: "outbound", read: 10, written: 20)
        first.proxyError(direction: "outbound", cause: "connect_failed")

        var merged = first.snapshot()
        merged.merge(second.snapshot())
        #expect(merged.responses(direction: "outbound", service: "web", backend: "web-v1", status: 200) == 2)
        #expect(merged.responses(direction: "outbound", service: "web", backend: "web-v2") == 3)
        #expect(merged.requests(direction: "outbound", service: "web", backend: "web-v2") == 2)
        let text = merged.prometheusText()
        let v1Labels = "direction=\"outbound\",service=\"web\",backend=\"web-v1\",tls=\"true\""
        let v2Labels = "direction=\"outbound\",service=\"web\",backend=\"web-v2\",tls=\"false\""
        #expect(text.contains("eino_requests_total{\(v1Labels)} 2\n"))
        #expect(text.contains("eino_responses_total{\(v1Labels),status_code=\"200\",classification=\"success\"} 2\n"))
        #expect(text.contains("eino_responses_total{\(v2Labels),status_code=\"502\",classification=\"failure\"} 1\n"))
        #expect(text.contains("eino_responses_total{\(v2Labels),status_code=\"403\",classification=\"failure\"} 1\n"))
        #expect(text.contains("eino_responses_total{\(v2Labels),status_code=\"404\",classification=\"success\"} 1\n"))
        #expect(!text.contains("status_code=\"404\",classification=\"failure\""))
        // Latency 0.6 ms and 3 ms; duration 0.7 ms and 20 ms. Buckets are cumulative.
        #expect(text.contains("eino_response_latency_seconds_bucket{\(v1Labels),le=\"0.0005\"} 0\n"))
        #expect(text.contains("eino_response_latency_seconds_bucket{\(v1Labels),le=\"0.001\"} 1\n"))
        #expect(text.contains("eino_response_latency_seconds_bucket{\(v1Labels),le=\"0.0025\"} 1\n"))
        #expect(text.contains("eino_response_latency_seconds_bucket{\(v1Labels),le=\"0.005\"} 2\n"))
        #expect(text.contains("eino_response_latency_seconds_sum{\(v1Labels)} 0.0036\n"))
        #expect(text.contains("eino_request_duration_seconds_bucket{\(v1Labels),le=\"0.01\"} 1\n"))
        #expect(text.contains("eino_request_duration_seconds_bucket{\(v1Labels),le=\"0.025\"} 2\n"))
        #expect(text.contains("eino_request_duration_seconds_count{\(v1Labels)} 2\n"))
        #expect(text.contains("eino_tcp_open_connections{direction=\"outbound\"} 1\n"))
        #expect(text.contains("eino_tcp_open_total{direction=\"outbound\"} 2\n"))
        #expect(text.contains("eino_tcp_read_bytes_total{direction=\"outbound\"} 10\n"))
        #expect(text.contains("eino_tcp_write_bytes_total{direction=\"outbound\"} 20\n"))
        #expect(text.contains("eino_proxy_errors_total{direction=\"outbound\",cause=\"connect_failed\"} 1\n"))
    }

    @Test func deltasAddUpToTheTotals() {
        let loop = LoopMetrics()
        let route = loop.route(direction: "outbound", service: "web", backend: "web", tls: false)
        for _ in 0..<3 { route.requestStarted(); route.record(status: 200, latencyNanoseconds: 1_000, durationNanoseconds: 2_000) }
        loop.proxyError(direction: "outbound", cause: "timeout")
        let earlier = loop.snapshot()
        for _ in 0..<2 { route.requestStarted(); route.record(status: 503, latencyNanoseconds: 1_000, durationNanoseconds: 2_000) }
        loop.connectionOpened(direction: "outbound")
        let later = loop.snapshot()

        let delta = later.subtracting(earlier)
        #expect(delta.responses(direction: "outbound", service: "web", backend: "web", status: 200) == 0)
        #expect(delta.responses(direction: "outbound", service: "web", backend: "web", status: 503) == 2)
        #expect(delta.proxyErrors.isEmpty)
        #expect(delta.tcp["outbound"]?.opened == 1)
        #expect(later.subtracting(later).routes.isEmpty)
        var rebuilt = earlier
        rebuilt.merge(delta)
        #expect(rebuilt.routes == later.routes)
    }

    @Test func quantilesInterpolateInsideTheirBucket() {
        var histogram = Histogram()
        // 90 in (5 ms, 10 ms], 10 in (50 ms, 100 ms].
        histogram.counts[4] = 90
        histogram.counts[7] = 10
        #expect(abs(histogram.quantile(0.5)! - (0.005 + 0.005 * 50 / 90)) < 1e-12)
        #expect(abs(histogram.quantile(0.9)! - 0.01) < 1e-12)
        #expect(abs(histogram.quantile(0.99)! - 0.095) < 1e-12)
        #expect(Histogram().quantile(0.5) == nil)
    }
}
