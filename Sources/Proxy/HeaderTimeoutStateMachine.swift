import NIOCore

/// Slow request heads (slowloris): a request head must arrive within `--header-timeout`
/// of its first byte (of the connection's start, for the first request). Pure.
///
/// The clock is a deadline, not a timer per request: a keep-alive connection serving
/// back-to-back requests would otherwise schedule and cancel a timer for every one. One
/// timer runs at a time; when it fires early (the head it was set for arrived, and another
/// is now being read) it is set again for the current deadline, and when no head is being
/// read it lapses. A timeout of zero or less turns the guard off: no timer is ever asked for.
public struct HeaderTimeoutStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        /// Between requests with no byte of the next one yet: no clock runs (idle keep-alive).
        case idle
        /// Reading a head, which must be complete by the deadline.
        case readingHead(deadline: NIODeadline)
        /// A head arrived; the exchange runs until the handler says it completed.
        case inExchange
        /// Timed out and answered; nothing more.
        case closed
    }

    public private(set) var state: State
    private let timeout: TimeAmount
    /// A timer is scheduled and has not fired yet.
    private var timerPending = false

    public enum Action: Sendable, Equatable {
        case none
        /// Schedule the (only) timer to fire at this deadline.
        case scheduleTimer(NIODeadline)
        /// Answer 408 and close.
        case reject
    }

    /// A new connection starts reading its first head at once.
    public init(timeout: TimeAmount, now: NIODeadline) {
        self.timeout = timeout
        state = .readingHead(deadline: now + timeout)
    }

    /// The connection is set up: start the clock for its first head.
    public mutating func start() -> Action {
        guard case .readingHead(let deadline) = state else { return .none }
        return schedule(deadline)
    }

    public mutating func bytesReceived(now: NIODeadline) -> Action {
        guard state == .idle else { return .none }
        let deadline = now + timeout
        state = .readingHead(deadline: deadline)
        return schedule(deadline)
    }

    public mutating func headReceived() {
        guard case .readingHead = state else { return }
        state = .inExchange
    }

    public mutating func exchangeCompleted() {
        guard state == .inExchange else { return }
        state = .idle
    }

    public mutating func timerFired(now: NIODeadline) -> Action {
        timerPending = false
        guard case .readingHead(let deadline) = state else { return .none }
        if now < deadline { return schedule(deadline) }
        state = .closed
        return .reject
    }

    private mutating func schedule(_ deadline: NIODeadline) -> Action {
        guard !timerPending, timeout > .zero else { return .none }
        timerPending = true
        return .scheduleTimer(deadline)
    }
}
