public import Platform
import Synchronization

/// A point-in-time view of the database's size and activity.
public struct DatabaseStats: Sendable, Equatable {
    /// Keys held.
    public var keys: Int
    /// Bytes of keys and values held (payload only, not memory overhead).
    public var bytes: Int
    /// Bytes in every live log segment (what recovery would replay).
    public var walBytes: Int
    /// The generation of the active checkpoint (the `version` file).
    public var generation: UInt64
    /// The segment being appended to, and the offset of its end: where the next record goes.
    public var logPosition: LogPosition
    /// Committed puts (batch entries included).
    public var puts: Int
    /// Committed deletes (batch entries included).
    public var deletes: Int
    /// Committed write requests: each put, delete or batch call.
    public var writes: Int
    /// Committed requests that were batches of several changes.
    public var batches: Int
    /// Group commits: each is one write and one fdatasync shared by every request in it.
    public var syncs: Int
    /// Reads served.
    public var gets: Int
    /// Listings served: each page (`list`, `listStored`) and each `count`.
    public var listings: Int
    /// Checkpoints completed since open, and the last one's duration.
    public var checkpoints: Int
    public var lastCheckpointDuration: Duration?
    /// Checkpoints that failed since open (the database goes on; the log keeps everything).
    public var failedCheckpoints: Int
    /// Why writes are refused, if an I/O failure disabled them.
    public var writesDisabledReason: String?
    /// Write requests per group commit, and the duration of each log write + fdatasync.
    public var commitSizes: HistogramSnapshot
    public var syncLatency: HistogramSnapshot
}

/// The counters behind `DatabaseStats`, updated without locks. Relaxed ordering: each counter is
/// a statistic on its own; no other memory is published through them.
final class EngineCounters: Sendable {
    let puts = Atomic<Int>(0)
    let deletes = Atomic<Int>(0)
    let writes = Atomic<Int>(0)
    let batches = Atomic<Int>(0)
    let syncs = Atomic<Int>(0)
    let gets = Atomic<Int>(0)
    let listings = Atomic<Int>(0)
    let checkpoints = Atomic<Int>(0)
    let failedCheckpoints = Atomic<Int>(0)
    let lastCheckpointNanoseconds = Atomic<Int>(-1)
    /// Bytes in log segments other than the one being appended to.
    let retiredLogBytes = Atomic<Int>(0)
    /// Committed puts and deletes: what the updates trigger of background checkpoints counts.
    var updates: Int { puts.load(ordering: .relaxed) + deletes.load(ordering: .relaxed) }

    let commitSizes = Histogram(bounds: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096])
    let syncLatency = Histogram(bounds: Histogram.latencyBounds, sumScale: 1e9)
}
