/// A place in the log: a segment (its generation) and a byte offset in it. Records need no
/// sequence numbers: a record is named by where it starts, and a replica that holds the log up to
/// a position holds exactly the records before it.
public struct LogPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var generation: UInt64
    public var offset: Int

    public init(generation: UInt64, offset: Int) {
        self.generation = generation
        self.offset = offset
    }

    public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool {
        (lhs.generation, lhs.offset) < (rhs.generation, rhs.offset)
    }

    public var description: String { "logfile.\(generation)@\(offset)" }
}

/// Receives each committed batch before it is applied or acknowledged: the hook for the output
/// rule of primary/backup replication (the Replication module implements it).
///
/// The committer calls `replicate` after the batch is durable in the local log and before any
/// reader can see it or any writer is answered. It must return only when the batch may be
/// acknowledged: when the replica holds it durably, or when the sink has decided to go on without
/// the replica (and has logged why).
public protocol ReplicationSink: AnyObject, Sendable {
    /// `records` are the batch's framed WAL records, exactly as written at `start` in logfile.(start.generation).
    func replicate(_ records: UnsafeRawBufferPointer, at start: LogPosition)
    /// The committer has started a new segment: later records go to logfile.`generation`.
    func didStartSegment(_ generation: UInt64)
}
