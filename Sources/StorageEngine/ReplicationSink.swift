/// Receives each committed batch before it is applied or acknowledged: the hook for the output
/// rule of primary/backup replication (the Replication module implements it).
///
/// The committer calls `replicate` after the batch is durable in the local log and before any
/// reader can see it or any writer is answered. It must return only when the batch may be
/// acknowledged (`.acknowledge`: the replica holds it durably, or the sink has decided to go on
/// without the replica and has logged why), or when it must not be (`.refuse`: the writers get
/// `DatabaseError.notReplicated`; the batch is still applied, since it is in the log).
public protocol ReplicationSink: AnyObject, Sendable {
    /// The batch has been written to the local log but not yet synced: a sink may start sending
    /// it now, so that the replica's sync overlaps the local one (a round then costs about the
    /// slower of the two syncs, not their sum). Nothing may be acknowledged on the strength of
    /// it: if the local sync fails, `replicate` is never called for the batch, and the replica
    /// may hold records this log lost (a replica ahead of its primary is resynced).
    func willSync(_ records: UnsafeRawBufferPointer, at start: LogPosition)
    /// `records` are the batch's framed WAL records, exactly as written at `start` in logfile.(start.generation).
    func replicate(_ records: UnsafeRawBufferPointer, at start: LogPosition) -> ReplicationVerdict
    /// The committer has started a new segment: later records go to logfile.`generation`.
    /// Called on the committer thread, in order with `replicate`.
    func didStartSegment(_ generation: UInt64)
}

extension ReplicationSink {
    public func willSync(_ records: UnsafeRawBufferPointer, at start: LogPosition) {}
}

/// What the replication sink decided about a batch.
public enum ReplicationVerdict: Sendable, Equatable {
    /// Answer the writers: the batch may be acknowledged.
    case acknowledge
    /// Answer the writers with `DatabaseError.notReplicated(reason)`.
    case refuse(reason: String)
}
