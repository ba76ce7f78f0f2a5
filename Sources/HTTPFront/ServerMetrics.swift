import Synchronization

/// The HTTP front's own metrics. Each event loop records into its own `LoopMetrics` (a lock no
/// other loop takes, so recording costs an uncontended lock); a scrape sums them.
final class ServerMetrics: Sendable {
    let loops: [LoopMetrics]
    let openConnections = Atomic<Int>(0)
    let acceptedConnections = Atomic<Int>(0)
    let rejectedConnections = Atomic<Int>(0)
    let timedOutConnections = Atomic<Int>(0)
    /// Connections closed by the write timeout (`HTTPServerConfiguration.writeTimeout`).
    let writeTimedOutConnections = Atomic<Int>(0)
    /// Failed registrations of the listening socket with an event loop (`LoopServer.watchListener`).
    let listenerWatchFailures = Atomic<Int>(0)
    /// Connections closed because epoll refused to change their watched events
    /// (`HTTPConnection.changeInterest`).
    let connectionWatchFailures = Atomic<Int>(0)

    init(loopCount: Int) {
        loops = (0..<loopCount).map { _ in LoopMetrics() }
    }
}
