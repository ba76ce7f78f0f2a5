import Dispatch
import Synchronization
import WireProtocol

/// What the replication layer needs from the engine, on both sides.
///
/// A primary streams its log to a backup from any position it still has (`readCommittedLog`),
/// or sends a checkpoint first (`snapshotForReplica`). A backup writes the primary's records into
/// its own log byte for byte (`applyReplicated`), starts a segment wherever the primary did
/// (`mirrorSegmentStart`, which mirrors the primary's checkpoint), and replaces its whole state
/// with a primary's snapshot when its log cannot be continued (`installSnapshot`). So a backup's
/// directory holds the same generations as its primary's, and a position (generation, offset)
/// names the same record on both.
extension Database {
    /// Where the next record goes: everything before it is durable and applied.
    public var logPosition: LogPosition { committer.logPosition }

    /// The generations that have a log segment, ascending.
    public func logGenerations() throws(DatabaseError) -> [UInt64] {
        try logStore.logGenerations()
    }

    /// Whole records of logfile.`generation` from `offset`, about `maxBytes` of them (more if a
    /// single record is larger), never past `limit` (pass the end of what the caller knows to
    /// be committed; bytes beyond it may be a round still being written). Empty at the end.
    public func readCommittedLog(
        generation: UInt64, from offset: Int, maxBytes: Int, limit: Int
    ) throws(DatabaseError) -> [UInt8] {
        guard offset < limit else { return [] }
        var bytes = try logStore.readLog(generation, from: offset, maxBytes: min(maxBytes, limit - offset))
        let outcome = bytes.withUnsafeBytes { raw in WALSegmentReader.scan(raw) { _ in } }
        switch outcome {
        case .clean:
            return bytes
        case .tornTail(let cut, _, .incomplete) where cut > 0:
            return Array(bytes[..<cut])  // the chunk ended inside a record: the next read takes it
        case .tornTail(0, _, .incomplete) where bytes.count >= WALFormat.headerSize:
            // One record larger than maxBytes: read exactly it.
            let payloadLength = bytes.withUnsafeBytes { Int($0.loadLittleEndianUInt32(at: 0)) }
            let size = WALFormat.headerSize + payloadLength + WALFormat.trailerSize
            guard offset + size <= limit else { break }
            bytes = try logStore.readLog(generation, from: offset, maxBytes: size)
            if bytes.count == size, case .clean = bytes.withUnsafeBytes({ raw in WALSegmentReader.scan(raw) { _ in } }) {
                return bytes
            }
        default:
            break
        }
        throw .corruptLog(
            file: logStore.logLocation(generation), offset: offset + outcome.validPrefixLength,
            reason: "a committed record does not decode while streaming it to a replica")
    }

    /// The CRC-32 of the first `length` bytes of logfile.`generation`, or nil if the segment is
    /// missing or shorter: how a primary checks that a backup's log is a prefix of its own.
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

    /// A checkpoint to bootstrap a replica from: runs a checkpoint, then reads the file it wrote.
    /// The replica then streams from (generation, 0). Retries if a concurrent checkpoint deletes
    /// the file before it is read.
    public func snapshotForReplica(completion: @escaping @Sendable (Result<ReplicaSnapshot, DatabaseError>) -> Void) {
        snapshotForReplica(attempts: 3, completion: completion)
    }

    private func snapshotForReplica(
        attempts: Int, completion: @escaping @Sendable (Result<ReplicaSnapshot, DatabaseError>) -> Void
    ) {
        checkpoint { result in
            switch result {
            case .failure(let error):
                completion(.failure(error))
            case .success(let written):
                do throws(DatabaseError) {
                    let bytes = try self.snapshotStore.readCheckpoint(written.generation)
                    completion(.success(ReplicaSnapshot(generation: written.generation, checkpoint: bytes)))
                } catch {
                    if attempts > 1 {
                        self.snapshotForReplica(attempts: attempts - 1, completion: completion)
                    } else {
                        completion(.failure(error))
                    }
                }
            }
        }
    }

    // MARK: The backup's side

    /// Writes a primary's records at `start` in this log, byte for byte, and applies them. Fails
    /// with `.replicaMismatch` (writing nothing) unless this log ends exactly at `start` and the
    /// bytes are whole, valid records. `completion` runs once they are durable and applied: on
    /// the calling thread, before this returns, when no other write is in flight (a backup's
    /// follower is its only writer, so it normally commits inline: no thread hand-off per
    /// batch), else on the committer thread.
    public func applyReplicated(
        _ records: [UInt8], at start: LogPosition,
        completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        var batch = WriteBatch()
        let outcome = records.withUnsafeBytes { raw in
            WALSegmentReader.scan(raw) { record in
                record.forEachEntry { opcode, key, value in
                    batch.append(opcode == .set ? .set(Key(bytes: key), StoredValue(value)) : .delete(Key(bytes: key)))
                }
            }
        }
        guard case .clean = outcome, !records.isEmpty else {
            return completion(.failure(.replicaMismatch("replicated records at \(start) do not decode (\(outcome))")))
        }
        let replicated = GroupCommitter.ReplicatedRecords(bytes: records, start: start)
        if committer.commitInline(batch, replicated: replicated, completion: completion) { return }
        committer.enqueue(batch, replicated: replicated, completion: completion)
    }

    /// Starts logfile.`generation` where the primary did and checkpoints there, as the primary
    /// does. `rotated` runs once the new segment receives records (records for it may be applied
    /// from then on); the checkpoint itself finishes in the background and logs its outcome.
    public func mirrorSegmentStart(
        _ generation: UInt64, rotated: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        guard generation < Database.largestReplicatedGeneration else {
            return rotated(.failure(.replicaMismatch("generation \(generation) is out of range")))
        }
        let log = options.log ?? { _, _ in }
        checkpointer.checkpoint(expecting: generation, rotated: { rotated($0.map { _ in () }) }) { result in
            if case .failure(let error) = result {
                log(.error, "mirrored checkpoint \(generation) failed: \(error) (the log keeps every record; the next one retries)")
            }
        }
    }

    /// Replaces this database's whole state with a primary's checkpoint: afterwards the directory
    /// holds checkpoint.G, an empty logfile.G and version G, and the log continues at (G, 0).
    ///
    /// The steps, in order, between two commit rounds and with no checkpoint running:
    /// 1. Decode and verify the checkpoint (nothing changes if it is damaged).
    /// 2. Write the `resync` marker: from here until step 5 the directory is incomplete, and
    ///    recovery refuses to open it (`DatabaseError.incompleteResync`).
    /// 3. Delete every checkpoint, segment, `version` and `newVersion`.
    /// 4. Write checkpoint.G, create logfile.G, write `version` G.
    /// 5. Delete the marker, then swap the in-memory state.
    /// A failure in steps 2–5 disables writes (the directory's state is unknown until reopened).
    public func installSnapshot(
        _ snapshot: ReplicaSnapshot, completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        let generation = snapshot.generation
        guard generation < Database.largestReplicatedGeneration else {
            return completion(.failure(.replicaMismatch("snapshot generation \(generation) is out of range")))
        }
        let decoded: ShardedMap
        do throws(DatabaseError) {
            decoded = try Recovery.decodeCheckpoint(
                snapshot.checkpoint, generation: generation, file: "the primary's checkpoint.\(generation)"
            ).map
        } catch {
            return completion(.failure(error))
        }
        let logStore = self.logStore
        let snapshotStore = self.snapshotStore
        let map = self.map
        let committer = self.committer
        checkpointer.runExclusive({
            let replaced = Mutex<Result<Void, DatabaseError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            committer.enqueue(.replaceLog(generation: generation, prepare: { () throws(DatabaseError) in
                try snapshotStore.writeMetadata(.resync, Array("installing checkpoint.\(generation)\n".utf8))
                for old in try snapshotStore.checkpointGenerations() { try snapshotStore.removeCheckpoint(old) }
                for old in try logStore.logGenerations() { try logStore.removeLog(old) }
                try snapshotStore.removeNewVersion()
                try snapshotStore.removeVersion()
                try snapshotStore.writeCheckpoint(generation) { (write) throws(DatabaseError) in
                    var offset = 0
                    while offset < snapshot.checkpoint.count {
                        let end = min(snapshot.checkpoint.count, offset + (8 << 20))
                        try write(Array(snapshot.checkpoint[offset..<end]))
                        offset = end
                    }
                }
                try logStore.createLog(generation).close()
                try snapshotStore.writeVersion(generation)
                try snapshotStore.removeMetadata(.resync)
                map.replaceContents(with: decoded)
            }) { result in
                replaced.withLock { $0 = result }
                done.signal()
            })
            done.wait()
            return replaced.withLock { $0 }!.map { generation }
        }, completion: completion)
    }

    /// Generations a primary may name: far below the largest number, so that this log can
    /// always start the next segment (a hostile or broken peer cannot make it overflow).
    static let largestReplicatedGeneration: UInt64 = 1 << 62

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

    /// Empties a data directory left incomplete by an interrupted snapshot install (see
    /// `installSnapshot`), so that it opens as a new, empty database: deletes every checkpoint,
    /// segment, marker and the `resync` marker last. Keeps the `replication` file. Does nothing
    /// to a directory without the marker. Returns whether it emptied it.
    @discardableResult
    public static func discardIncompleteResync(directory: String) throws(DatabaseError) -> Bool {
        let store = try FileStore(directory: directory, create: false)
        defer { store.close() }
        return try discardIncompleteResync(logStore: store, snapshotStore: store)
    }

    /// As `discardIncompleteResync(directory:)`, over any stores.
    @discardableResult
    public static func discardIncompleteResync(
        logStore: any LogStore, snapshotStore: any SnapshotStore
    ) throws(DatabaseError) -> Bool {
        guard try snapshotStore.readMetadata(.resync) != nil else { return false }
        for old in try snapshotStore.checkpointGenerations() { try snapshotStore.removeCheckpoint(old) }
        for old in try logStore.logGenerations() { try logStore.removeLog(old) }
        try snapshotStore.removeNewVersion()
        try snapshotStore.removeVersion()
        try snapshotStore.removeTemporaries()
        try snapshotStore.removeMetadata(.resync)
        return true
    }
}

/// A primary's checkpoint file, to bootstrap a replica: the replica's log continues at
/// (generation, 0).
public struct ReplicaSnapshot: Sendable {
    public var generation: UInt64
    public var checkpoint: [UInt8]

    public init(generation: UInt64, checkpoint: [UInt8]) {
        self.generation = generation
        self.checkpoint = checkpoint
    }
}
