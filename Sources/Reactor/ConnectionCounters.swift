public import Synchronization

/// What the reactor counts about connections, for a front's metrics: updated from every loop
/// without locks, read at any time.
public final class ConnectionCounters: Sendable {
    /// Connections open now, across every loop.
    public let open = Atomic<Int>(0)
    public let accepted = Atomic<Int>(0)
    /// Sent the rejection: over `ConnectionPolicy.maxConnections`.
    public let rejected = Atomic<Int>(0)
    /// Closed for a message read too slowly, or for idleness.
    public let timedOut = Atomic<Int>(0)
    /// Closed because the client took none of its answers for `writeTimeout`.
    public let writeTimedOut = Atomic<Int>(0)
    /// Registrations of the listening socket that epoll refused (each is retried on a tick).
    public let listenerWatchFailures = Atomic<Int>(0)
    /// Connections closed because epoll refused to register them or change their events.
    public let connectionWatchFailures = Atomic<Int>(0)
    /// Per loop: the connections it owns, and those handed to it and not yet adopted.
    public let perLoop: [LoopConnectionCount]

    public init(loopCount: Int) {
        perLoop = (0..<max(1, loopCount)).map { _ in LoopConnectionCount() }
    }
}

/// One loop's connection count (a class: an `Atomic` cannot live in an array).
public final class LoopConnectionCount: Sendable {
    public let value = Atomic<Int>(0)
}
