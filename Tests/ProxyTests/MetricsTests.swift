import Telemetry
import Testing

@Suite struct MetricsTests {
    @Test func loopsCountAloneAndMergeOnScrape() {
        let first = LoopMetrics(), second = LoopMetrics()
        first.route(direction: "outbound", service: "web", backend: "web-v1").record(status: 200, nanoseconds: 700_000)
        second.route(direction: "outbound", service: "web", backend: "web-v1").record(status: 200, nanoseconds: 20_000_000)
        second.route(direction: "outbound", service: "web", backend: "web-v2").record(status: 502, nanoseconds: 100_000)
        first.connectionOpened(direction: "outbound")
        second.connectionOpened(direction: "outbound")
        second.connectionClosed(direction: "outbound", received: 10, sent: 20)
        first.proxyError(direction: "outbound", cause: "connect_failed")

        var merged = first.snapshot()
        merged.merge(second.snapshot())
        #expect(merged.requests(direction: "outbound", service: "web", backend: "web-v1", status: 200) == 2)
        #expect(merged.requests(direction: "outbound", service: "web", backend: "web-v2") == 1)
        let text = merged.prometheusText()
        #expect(text.contains("eino_requests_total{direction=\"outbound\",service=\"web\",backend=\"web-v1\",code=\"200\"} 2\n"))
        #expect(text.contains("eino_requests_total{direction=\"outbound\",service=\"web\",backend=\"web-v2\",code=\"502\"} 1\n"))
        // 0.7 ms lands in the 1 ms bucket, 20 ms in the 25 ms one; buckets are cumulative.
        #expect(text.contains("eino_request_duration_seconds_bucket{direction=\"outbound\",service=\"web\",backend=\"web-v1\",le=\"0.0005\"} 0\n"))
        #expect(text.contains("eino_request_duration_seconds_bucket{direction=\"outbound\",service=\"web\",backend=\"web-v1\",le=\"0.001\"} 1\n"))
        #expect(text.contains("eino_request_duration_seconds_bucket{direction=\"outbound\",service=\"web\",backend=\"web-v1\",le=\"0.025\"} 2\n"))
        #expect(text.contains("eino_request_duration_seconds_count{direction=\"outbound\",service=\"web\",backend=\"web-v1\"} 2\n"))
        #expect(text.contains("eino_tcp_open_connections{direction=\"outbound\"} 1\n"))
        #expect(text.contains("eino_tcp_connections_total{direction=\"outbound\"} 2\n"))
        #expect(text.contains("eino_tcp_bytes_total{direction=\"outbound\",flow=\"received\"} 10\n"))
        #expect(text.contains("eino_proxy_errors_total{direction=\"outbound\",cause=\"connect_failed\"} 1\n"))
    }
}
