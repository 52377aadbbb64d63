/// The life of one proxied HTTP exchange on a downstream connection (or h2 stream), apart
/// from any I/O: the handler feeds it events and carries out the actions it returns.
///
/// Two halves move independently: the request (downstream → upstream) and the response
/// (upstream → downstream). The exchange is over when both have ended; only then may the
/// upstream connection go back to its pool and the next request start.
public struct HTTPExchangeStateMachine: Sendable {
    public enum Request: Sendable, Equatable { case idle, streaming, ended }
    public enum Response: Sendable, Equatable { case none, started, ended }
    public enum Upstream: Sendable, Equatable { case none, connecting, connected, gone }

    public private(set) var request: Request = .idle
    public private(set) var response: Response = .none
    public private(set) var upstream: Upstream = .none
    /// The proxy answered itself (an error): request parts still arriving are dropped.
    public private(set) var answeredLocally = false
    /// The upstream connection may not be reused (reset, timeout, early response …).
    public private(set) var upstreamReusable = true

    public init() {}

    public var isIdle: Bool { request == .idle && response == .none }

    // MARK: request side

    public enum HeadAction: Sendable, Equatable {
        /// Decide where it goes and connect.
        case route
        /// A head while another exchange is running: a protocol error.
        case protocolError
    }

    public mutating func requestHead() -> HeadAction {
        guard isIdle else { return .protocolError }
        request = .streaming
        return .route
    }

    public enum PartAction: Sendable, Equatable {
        /// Hold it until the upstream is connected.
        case buffer
        /// Write it to the upstream.
        case forward
        /// Drop it: the exchange was answered locally or the upstream is gone.
        case discard
    }

    public mutating func requestBody() -> PartAction {
        guard request == .streaming else { return .discard }
        return partAction()
    }

    /// Returns what to do with the end, and whether the exchange is now complete.
    public mutating func requestEnd() -> (PartAction, complete: Bool) {
        guard request == .streaming else { return (.discard, false) }
        request = .ended
        return (partAction(), finishIfDone())
    }

    private func partAction() -> PartAction {
        if answeredLocally { return .discard }
        switch upstream {
        case .none, .connecting: return .buffer
        case .connected: return .forward
        case .gone: return .discard
        }
    }

    // MARK: upstream connection

    public mutating func connecting() {
        upstream = .connecting
    }

    public enum ConnectedAction: Sendable, Equatable {
        /// Write the head and what was buffered.
        case sendBuffered
        /// The exchange was already answered (timeout …): give the connection up.
        case abandon
    }

    public mutating func connected() -> ConnectedAction {
        guard upstream == .connecting, !answeredLocally else {
            upstreamReusable = false
            return .abandon
        }
        upstream = .connected
        return .sendBuffered
    }

    public enum FailureAction: Sendable, Equatable {
        /// No response has started: answer with this proxy error.
        case respond(ProxyError)
        /// A response is under way and cannot be changed: cut the downstream connection.
        case abort
        /// Nothing to do (already answered or finished).
        case none
    }

    /// The upstream could not be connected, or it closed or failed before the response ended.
    public mutating func upstreamFailed(connecting: Bool) -> FailureAction {
        let wasConnected = upstream != .none
        upstream = .gone
        upstreamReusable = false
        if answeredLocally || response == .ended || !wasConnected { return .none }
        if response == .started { return .abort }
        return .respond(connecting ? .connectFailed : .upstreamReset)
    }

    /// The request took longer than `--request-timeout`.
    public mutating func timedOut() -> FailureAction {
        if answeredLocally || response == .ended { return .none }
        upstreamReusable = false
        if response == .started { return .abort }
        return .respond(.timeout)
    }

    // MARK: response side

    /// The proxy answers by itself. Returns whether the exchange is complete (the request
    /// had ended); if not, the connection must close after the answer, since the rest of
    /// the request body is not wanted.
    public mutating func answerLocally() -> (complete: Bool, closeAfter: Bool) {
        answeredLocally = true
        response = .ended
        if upstream == .connected || upstream == .connecting { upstreamReusable = false }
        let closeAfter = request != .ended
        return (finishIfDone(), closeAfter)
    }

    public mutating func responseHead() -> Bool {
        guard !answeredLocally, response == .none else { return false }
        response = .started
        return true
    }

    public mutating func responseBody() -> Bool {
        !answeredLocally && response == .started
    }

    /// Returns whether to write the end and whether the exchange is now complete.
    public mutating func responseEnd() -> (write: Bool, complete: Bool) {
        guard !answeredLocally, response == .started else { return (false, false) }
        response = .ended
        if request != .ended {
            // The upstream answered before the request body was all sent; the connection
            // is left in an unknown state.
            upstreamReusable = false
        }
        return (true, finishIfDone())
    }

    private mutating func finishIfDone() -> Bool {
        guard request == .ended, response == .ended else { return false }
        return true
    }

    /// Starts over for the next request on the connection; returns whether the upstream
    /// connection may go back to the pool.
    public mutating func reset() -> Bool {
        let reusable = upstreamReusable && upstream == .connected && !answeredLocally
        self = HTTPExchangeStateMachine()
        return reusable
    }
}

/// Errors the proxy answers with itself. Status and `eino-error` text are a contract.
public enum ProxyError: Sendable, Equatable {
    case unknownService(String)
    case noEndpoints
    case connectFailed
    case upstreamReset
    case timeout
    case overloaded
    case headerTooLarge
    case headerTimeout
    case badRequest
    /// The mTLS handshake with a peer proxy failed; the text says why (e.g. identity mismatch).
    case upstreamTLS(String)
    /// Denied by a TrafficTarget.
    case forbidden

    public var status: Int {
        switch self {
        case .unknownService, .noEndpoints, .overloaded: 503
        case .connectFailed, .upstreamReset, .upstreamTLS: 502
        case .timeout: 504
        case .headerTooLarge: 431
        case .headerTimeout: 408
        case .badRequest: 400
        case .forbidden: 403
        }
    }

    public var cause: String {
        switch self {
        case .unknownService(let name): "unknown service \(name)"
        case .noEndpoints: "no endpoints"
        case .connectFailed: "upstream connect failed"
        case .upstreamReset: "upstream reset"
        case .timeout: "request timeout"
        case .overloaded: "overloaded"
        case .headerTooLarge: "request header too large"
        case .headerTimeout: "request header timeout"
        case .badRequest: "bad request"
        case .upstreamTLS(let cause): cause
        case .forbidden: "forbidden"
        }
    }

    /// The label in `eino_proxy_errors_total`.
    public var metricCause: String {
        switch self {
        case .unknownService: "unknown_service"
        case .noEndpoints: "no_endpoints"
        case .connectFailed: "connect_failed"
        case .upstreamReset: "upstream_reset"
        case .timeout: "timeout"
        case .overloaded: "overloaded"
        case .headerTooLarge: "header_too_large"
        case .headerTimeout: "header_timeout"
        case .badRequest: "bad_request"
        case .forbidden: "forbidden"
        case .upstreamTLS(let cause): cause.hasPrefix("upstream identity mismatch") ? "upstream_identity_mismatch" : "upstream_tls"
        }
    }
}
