/// Slow request heads (slowloris): a request head must arrive within `--header-timeout`
/// of its first byte (of the connection's start, for the first request). Pure.
public struct HeaderTimeoutStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        /// Between requests with no byte of the next one yet: no clock runs (idle keep-alive).
        case idle
        /// Reading a head: the clock runs.
        case readingHead
        /// A head arrived; the exchange runs until the handler says it completed.
        case inExchange
        /// Timed out and answered; nothing more.
        case closed
    }

    public private(set) var state: State

    /// A new connection starts reading its first head at once.
    public init() {
        state = .readingHead
    }

    public enum Action: Sendable, Equatable {
        case none
        case startTimer
        case cancelTimer
        /// Answer 408 and close.
        case reject
    }

    public mutating func bytesReceived() -> Action {
        guard state == .idle else { return .none }
        state = .readingHead
        return .startTimer
    }

    public mutating func headReceived() -> Action {
        guard state == .readingHead else { return .none }
        state = .inExchange
        return .cancelTimer
    }

    public mutating func exchangeCompleted() -> Action {
        guard state == .inExchange else { return .none }
        state = .idle
        return .none
    }

    public mutating func timerFired() -> Action {
        guard state == .readingHead else { return .none }
        state = .closed
        return .reject
    }
}
