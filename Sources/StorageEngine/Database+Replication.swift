import WireProtocol

/// What the replication layer needs from the engine, on both sides.
///
/// A primary streams its log to a backup from any position it still has (`readCommittedLog`),
/// or sends a checkpoint first (`snapshotForReplica`). A backup writes the primary's records into
/// its own log byte for byte (`applyReplicated`), starts a segment wherever the primary did
/// (`mirrorSegmentStart`, which mirrors the primary's checkpoint), and replaces its whole state
/// with a primary's snapshot when its log cannot be continued (`receiveSnapshot`). So a backup's
/// directory holds the same generations as its primary's, and a position (generation, offset)
/// names the same record on both.
///
/// This file holds what both sides use: the log's end, the prefix checksum that tells whether a
/// backup's log continues its primary's, the switch for background checkpoints (off on a backup,
/// on again at its promotion) and the replication layer's state file. What only a primary uses is
/// in Database+PrimarySide.swift, what only a backup uses in Database+BackupSide.swift.
extension Database {
    /// Where the next record goes: everything before it is durable and applied.
    public var logPosition: LogPosition { committer.logPosition }

    /// The CRC-32 of the first `length` bytes of logfile.`generation`, or nil if the segment is
    /// missing or shorter: how a primary checks that a backup's log is a prefix of its own (the
    /// backup sends the checksum of its log in its hello; the primary computes its own to compare).
    public func logPrefixChecksum(generation: UInt64, length: Int) throws(DatabaseError) -> UInt32? {
        guard try logStore.logGenerations().contains(generation) else { return nil }
        var crc = CRC32()
        var offset = 0
        while offset < length {
            let chunk = try logStore.readLog(generation, from: offset, maxBytes: min(4 << 20, length - offset))
            guard !chunk.isEmpty else { return nil }
            chunk.withUnsafeBytes { crc.update($0) }
            offset += chunk.count
        }
        return crc.value
    }

    /// Switches background checkpoints on or off (a backup's are off until it is promoted; its
    /// checkpoints mirror the primary's).
    public func setBackgroundCheckpoints(enabled: Bool) {
        checkpointer.setBackgroundCheckpoints(enabled: enabled)
    }

    // MARK: Metadata

    /// The replication layer's state file (`MetadataFile.replication`), or nil if absent.
    public func readReplicationMetadata() throws(DatabaseError) -> [UInt8]? {
        try snapshotStore.readMetadata(.replication)
    }

    /// Replaces the replication layer's state file, durably.
    public func writeReplicationMetadata(_ bytes: [UInt8]) throws(DatabaseError) {
        try snapshotStore.writeMetadata(.replication, bytes)
    }
}
