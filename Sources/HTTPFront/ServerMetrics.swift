import Reactor

/// The HTTP front's own metrics. Each event loop records into its own `LoopMetrics` (a lock no
/// other loop takes, so recording costs an uncontended lock); a scrape sums them.
final class ServerMetrics: Sendable {
    let loops: [LoopMetrics]
    /// What the reactor counts about connections (open, accepted, rejected, timed out, watch
    /// failures, per-loop ownership); rendered here under the smalldb_http_ names.
    let connections: ConnectionCounters

    init(loopCount: Int) {
        loops = (0..<loopCount).map { _ in LoopMetrics() }
        connections = ConnectionCounters(loopCount: loopCount)
    }
}
