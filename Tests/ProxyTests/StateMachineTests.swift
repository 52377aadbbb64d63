import NIOCore
@testable import Proxy
import Testing

@Suite struct ProtocolDetectionTests {
    func detect(_ text: String, budget: Int = 1024) -> ProtocolDetectionStateMachine.Verdict {
        var machine = ProtocolDetectionStateMachine(budget: budget)
        return machine.received(Array(text.utf8))
    }

    @Test func classifiesFirstBytes() {
        #expect(detect("GET / HTTP/1.1\r\n") == .detected(.http1))
        #expect(detect("POST ") == .detected(.http1))
        #expect(detect("GE") == .needMore)
        #expect(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == .detected(.http2))
        #expect(detect("PRI * HTTP/2") == .needMore)
        #expect(detect("PRI /x HTTP/1.1\r\n") == .detected(.http1))
        #expect(detect("\u{0}\u{1}binary") == .detected(.opaque))
        #expect(detect("get / HTTP/1.1") == .detected(.opaque))
        #expect(detect(String(repeating: "A", count: 30)) == .detected(.opaque))
        var tls = ProtocolDetectionStateMachine(budget: 1024)
        do { let result = tls.received([0x16]); #expect(result == .needMore) }
        do { let result = tls.received([0x16, 0x03, 0x01]); #expect(result == .detected(.tls)) }
    }

    @Test func budgetAndTimeoutFallBackToOpaque() {
        var machine = ProtocolDetectionStateMachine(budget: 4)
        do { let result = machine.received(Array("PRI ".utf8)); #expect(result == .detected(.opaque)) }
        var slow = ProtocolDetectionStateMachine(budget: 1024)
        do { let result = slow.received(Array("GE".utf8)); #expect(result == .needMore) }
        do { let result = slow.timedOut(); #expect(result == .opaque) }
        do { let result = slow.received(Array("GET ".utf8)); #expect(result == .detected(.opaque)) }
    }
}

@Suite struct HeaderTimeoutTests {
    static func at(_ seconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000) }

    @Test func clockRunsOnlyWhileAHeadIsRead() {
        var machine = HeaderTimeoutStateMachine(timeout: .seconds(10), now: Self.at(100))
        #expect(machine.state == .readingHead(deadline: Self.at(110)))
        do { let result = machine.start(); #expect(result == .scheduleTimer(Self.at(110))) }
        do { let result = machine.bytesReceived(now: Self.at(101)); #expect(result == .none) }
        machine.headReceived()
        do { let result = machine.timerFired(now: Self.at(110)); #expect(result == .none) }
        machine.exchangeCompleted()
        #expect(machine.state == .idle)
        do { let result = machine.timerFired(now: Self.at(111)); #expect(result == .none) }
        do { let result = machine.bytesReceived(now: Self.at(200)); #expect(result == .scheduleTimer(Self.at(210))) }
        do { let result = machine.timerFired(now: Self.at(210)); #expect(result == .reject) }
        #expect(machine.state == .closed)
        machine.headReceived()
        #expect(machine.state == .closed)
    }

    /// Back-to-back requests on a keep-alive connection share one timer: it is scheduled
    /// once, and when it fires before the current head's deadline it is set for that one.
    @Test func oneTimerServesManyRequests() {
        var machine = HeaderTimeoutStateMachine(timeout: .seconds(10), now: Self.at(0))
        do { let result = machine.start(); #expect(result == .scheduleTimer(Self.at(10))) }
        for second in Int64(1)...9 {
            machine.headReceived()
            machine.exchangeCompleted()
            do { let result = machine.bytesReceived(now: Self.at(second)); #expect(result == .none) }
        }
        #expect(machine.state == .readingHead(deadline: Self.at(19)))
        do { let result = machine.timerFired(now: Self.at(10)); #expect(result == .scheduleTimer(Self.at(19))) }
        do { let result = machine.timerFired(now: Self.at(19)); #expect(result == .reject) }
    }

    /// A timer that lapsed (no head was being read when it fired) is scheduled again by
    /// the next request's first byte.
    @Test func aLapsedTimerIsScheduledAgain() {
        var machine = HeaderTimeoutStateMachine(timeout: .seconds(10), now: Self.at(0))
        _ = machine.start()
        machine.headReceived()
        do { let result = machine.timerFired(now: Self.at(10)); #expect(result == .none) }
        machine.exchangeCompleted()
        do { let result = machine.bytesReceived(now: Self.at(30)); #expect(result == .scheduleTimer(Self.at(40))) }
    }
}

@Suite struct HTTPExchangeTests {
    @Test func ordinaryExchangeReusesTheUpstream() {
        var machine = HTTPExchangeStateMachine()
        do { let result = machine.requestHead(); #expect(result == .route) }
        machine.connecting()
        do { let result = machine.requestBody(); #expect(result == .buffer) }
        do { let result = machine.connected(); #expect(result == .sendBuffered) }
        do { let result = machine.requestBody(); #expect(result == .forward) }
        let (end, complete) = machine.requestEnd()
        #expect(end == .forward && !complete)
        do { let result = machine.responseHead(); #expect(result) }
        do { let result = machine.responseBody(); #expect(result) }
        let (write, done) = machine.responseEnd()
        #expect(write && done)
        do { let result = machine.reset(); #expect(result) }
        #expect(machine.isIdle)
    }

    @Test func connectFailureBeforeResponseIs502() {
        var machine = HTTPExchangeStateMachine()
        _ = machine.requestHead()
        machine.connecting()
        _ = machine.requestEnd()
        do { let result = machine.upstreamFailed(connecting: true); #expect(result == .respond(.connectFailed)) }
        do { let result = machine.answerLocally(); #expect(result == (complete: true, closeAfter: false)) }
        do { let result = machine.reset(); #expect(result == false) }
    }

    @Test func resetDuringResponseAborts() {
        var machine = HTTPExchangeStateMachine()
        _ = machine.requestHead()
        machine.connecting()
        _ = machine.connected()
        _ = machine.requestEnd()
        do { let result = machine.responseHead(); #expect(result) }
        do { let result = machine.upstreamFailed(connecting: false); #expect(result == .abort) }
    }

    @Test func earlyResponseDropsTheUpstreamAndWaitsForTheRequestEnd() {
        var machine = HTTPExchangeStateMachine()
        _ = machine.requestHead()
        machine.connecting()
        _ = machine.connected()
        do { let result = machine.responseHead(); #expect(result) }
        do { let result = machine.responseEnd(); #expect(result == (write: true, complete: false)) }
        do { let result = machine.requestBody(); #expect(result == .forward) }
        do { let result = machine.requestEnd(); #expect(result == (.forward, complete: true)) }
        do { let result = machine.reset(); #expect(result == false) }
    }

    @Test func localAnswerDropsTheRestOfTheBody() {
        var machine = HTTPExchangeStateMachine()
        _ = machine.requestHead()
        do { let result = machine.answerLocally(); #expect(result == (complete: false, closeAfter: true)) }
        do { let result = machine.requestBody(); #expect(result == .discard) }
        do { let result = machine.requestEnd(); #expect(result == (.discard, complete: true)) }
        do { let result = machine.responseHead(); #expect(result == false) }
        do { let result = machine.timedOut(); #expect(result == .none) }
    }

    @Test func timeoutBeforeAndDuringResponse() {
        var before = HTTPExchangeStateMachine()
        _ = before.requestHead()
        before.connecting()
        do { let result = before.timedOut(); #expect(result == .respond(.timeout)) }
        var during = HTTPExchangeStateMachine()
        _ = during.requestHead()
        during.connecting()
        _ = during.connected()
        _ = during.responseHead()
        do { let result = during.timedOut(); #expect(result == .abort) }
    }

    @Test func proxyErrorsSayWhatHappened() {
        #expect(ProxyError.unknownService("web").cause == "unknown service web")
        #expect(ProxyError.unknownService("web").status == 503)
        #expect(ProxyError.noEndpoints.cause == "no endpoints")
        #expect(ProxyError.connectFailed.status == 502)
        #expect(ProxyError.headerTooLarge.status == 431)
        #expect(ProxyError.headerTimeout.status == 408)
        #expect(ProxyError.timeout.status == 504)
    }
}

@Suite struct LoadBalancerTests {
    @Test func peakEWMATakesPeaksAtOnceAndDecays() {
        var ewma = PeakEWMA()
        ewma.observe(rttNanos: 50_000_000, now: 1_000_000_000)
        #expect(ewma.estimate == 50_000_000)
        ewma.observe(rttNanos: 1_000_000, now: 1_000_000_000 + 10_000_000_000)
        // One decay period later the estimate moved 1 - 1/e of the way down.
        #expect(abs(ewma.estimate - (50e6 * 0.36787944 + 1e6 * 0.63212056)) < 1e3)
    }

    @Test func powerOfTwoChoicesAvoidsTheSlowAndTheBusy() {
        var random = FastRandom(seed: 7)
        let costs: [Double] = [1, 1, 100]
        var picks = [0, 0, 0]
        for _ in 0..<3000 {
            picks[PowerOfTwoChoices.pick(count: 3, random: random.next()) { costs[$0] }] += 1
        }
        // The slow endpoint wins only when drawn twice, which two distinct draws never do.
        #expect(picks[2] == 0)
        #expect(picks[0] > 1200 && picks[1] > 1200)
        #expect(PowerOfTwoChoices.pick(count: 1, random: 99) { _ in 0 } == 0)
        var busy = PeakEWMA()
        busy.outstanding = 3
        #expect(busy.cost == PeakEWMA.initialNanos * 4)
    }

    @Test func durations() {
        #expect(parseDuration("500ms") == .milliseconds(500))
        #expect(parseDuration("10s") == .seconds(10))
        #expect(parseDuration("1m") == .minutes(1))
        #expect(parseDuration("24h") == .hours(24))
        #expect(parseDuration("0") == .zero)
        #expect(parseDuration("ten") == nil)
        #expect(parseDuration("1h30m") == .minutes(90))
        #expect(parseDuration("250us") == .microseconds(250))
        #expect(parseDuration("") == nil)
        #expect(parseDuration("10") == nil)
        #expect(parseDuration("5d") == nil)
    }
}
