import ControlPlane
import Foundation
import Telemetry
import Testing

@Suite struct TelemetryAggregatorTests {
    /// A report of `ok` 200s and `failed` 503s on outbound web → web-v1, 4 ms each.
    static func report(_ instance: String, sequence: UInt64, base: UInt64, ok: Int, failed: Int) -> TelemetryReport {
        let loop = LoopMetrics()
        let route = loop.route(direction: "outbound", service: "web", backend: "web-v1", tls: true)
        for index in 0..<(ok + failed) {
            route.requestStarted()
            route.record(status: index < ok ? 200 : 503, latencyNanoseconds: 4_000_000, durationNanoseconds: 5_000_000)
        }
        var report = TelemetryReport(instance: instance, sequence: sequence, base: base)
        report.add(loop.snapshot())
        return report
    }

    @Test func eachReportCountsOnceAndAStaleBaseIsRefused() async throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let aggregator = TelemetryAggregator(now: start)
        let first = await aggregator.apply(Self.report("a", sequence: 1, base: 0, ok: 7, failed: 2), now: start)
        #expect(first.acknowledged == 1 && first.applied)
        // Report 2 was applied but its answer lost: report 3 still starts from 1 and is refused,
        // naming 2; the proxy rebases and sends 4 from 2.
        #expect(await aggregator.apply(Self.report("a", sequence: 2, base: 1, ok: 3, failed: 0), now: start).applied)
        let stale = await aggregator.apply(Self.report("a", sequence: 3, base: 1, ok: 100, failed: 0), now: start)
        #expect(stale.acknowledged == 2 && !stale.applied)
        #expect(await aggregator.apply(Self.report("a", sequence: 4, base: 2, ok: 0, failed: 1), now: start).applied)
        // A proxy this control plane has not seen (it restarted, say) is taken at its word.
        #expect(await aggregator.apply(Self.report("b", sequence: 9, base: 8, ok: 7, failed: 0), now: start).applied)

        let rows = await aggregator.stat(seconds: 60, now: start.addingTimeInterval(30))
        #expect(rows.count == 1)
        #expect(rows.first?.requests == 20)
        #expect(rows.first?.successRate == 17.0 / 20)
        #expect(rows.first?.rps == 0.67)  // 20 in the 30 s since start
        #expect(rows.first?.latencyMsP50 == 3.75)  // (2.5, 5] ms, interpolated at half
        // Ten minutes later the 1m window is empty, the 10m one nearly so.
        #expect(await aggregator.stat(seconds: 60, now: start.addingTimeInterval(120)).isEmpty)
        #expect(await aggregator.stat(seconds: 600, now: start.addingTimeInterval(610)).isEmpty)
        #expect(await aggregator.stat(seconds: 600, service: "other", now: start).isEmpty)
    }

    @Test func reportsSurviveTheirJSONForm() throws {
        let report = Self.report("a", sequence: 1, base: 0, ok: 2, failed: 1)
        let decoded = try JSONDecoder().decode(TelemetryReport.self, from: try JSONEncoder().encode(report))
        #expect(decoded.metrics.routes == report.metrics.routes)
        #expect(decoded.routes.first?.responses.map(\.statusCode) == [200, 503])
        // Sections a proxy does not send decode as empty.
        let minimal = try JSONDecoder().decode(TelemetryReport.self, from: Data(#"{"instance":"x","sequence":1,"base":0}"#.utf8))
        #expect(minimal.routes.isEmpty && minimal.tcp.isEmpty)
    }

    @Test func aTrackerRebasesOnTheSequenceTheControlPlaneHolds() async {
        let tracker = DeltaTracker(zero: 0)
        #expect(await tracker.sending(10, sequence: 1) == 0)
        #expect(await tracker.sending(25, sequence: 2) == 0)  // 1 not acknowledged yet
        #expect(await tracker.acknowledged(1))
        #expect(await tracker.sending(40, sequence: 3) == 10)
        #expect(await !tracker.acknowledged(7))  // never sent
        await tracker.restart()
        #expect(await tracker.sending(41, sequence: 4) == 40)
    }
}
