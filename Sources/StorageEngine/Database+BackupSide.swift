#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Platform
import WireProtocol

/// The backup's side of replication: it writes the primary's records into its own log byte for
/// byte (`applyReplicated`), starts a segment wherever the primary did (`mirrorSegmentStart`,
/// which mirrors the primary's checkpoint), and replaces its whole state with a primary's
/// snapshot when its log cannot be continued (`receiveSnapshot`, then
/// `ReplicaSnapshotReceiver.install`, whose steps 3–6 are `replaceState` here); and, at start,
/// it empties a directory an interrupted install left incomplete (`discardIncompleteResync`). The
/// overview of both sides is in Database+Replication.swift.
extension Database {
    /// Writes a primary's records at `start` in this log, byte for byte, and applies them. Fails
    /// with `.replicaMismatch` (writing nothing) unless this log ends exactly at `start` and the
    /// bytes are whole, valid records. `completion` runs once they are durable and applied: on
    /// the calling thread, before this returns, when no other write is in flight (a backup's
    /// follower is its only writer, so it normally commits inline: no thread hand-off per
    /// batch), else on the committer thread.
    public func applyReplicated(
        _ records: [UInt8], at start: LogPosition,
        completion: @escaping @Sendable (Result<UInt64, DatabaseError>) -> Void
    ) {
        var batch = WriteBatch()
        // Each record is one revision on the primary: the batch keeps where each ends, so that
        // the backup numbers them alike (`WriteBatch.recordEnds`).
        var recordEnds: [Int] = []
        let outcome = records.withUnsafeBytes { raw in
            WALSegmentReader.scan(raw) { record in
                record.forEachEntry { opcode, key, value in
                    batch.append(opcode == .set ? .set(Key(bytes: key), StoredValue(value)) : .delete(Key(bytes: key)))
                }
                recordEnds.append(batch.count)
            }
        }
        if recordEnds.count > 1 { batch.recordEnds = recordEnds }
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

    /// Starts receiving a primary's checkpoint of `totalBytes` bytes for generation `generation`:
    /// its pieces go to checkpoint.G.tmp as they arrive (`ReplicaSnapshotReceiver`), and
    /// `ReplicaSnapshotReceiver.install` replaces this database's whole state with it. Nothing
    /// changes until then.
    ///
    /// `totalBytes` comes from the peer: more than the data directory's file system has free is
    /// refused here (ENOSPC), before checkpoint.G.tmp exists, so that a hostile or broken primary
    /// cannot fill the disk under this replica's old state, which stays beside the temporary
    /// until the install.
    public func receiveSnapshot(generation: UInt64, totalBytes: UInt64) throws(DatabaseError) -> ReplicaSnapshotReceiver {
        guard generation < Database.largestReplicatedGeneration else {
            throw .replicaMismatch("snapshot generation \(generation) is out of range")
        }
        if let available = try snapshotStore.availableBytes(), totalBytes > available {
            throw .io(
                operation: "receiving a \(totalBytes)-byte snapshot (\(available) bytes free) into",
                path: snapshotStore.checkpointLocation(generation) + ".tmp", errno: ENOSPC)
        }
        let temporary = try snapshotStore.createCheckpointTemporary(generation)
        return ReplicaSnapshotReceiver(database: self, temporary: temporary, totalBytes: totalBytes)
    }

    /// Replaces this database's whole state with a primary's checkpoint held in one buffer (for
    /// tests and tools; replication streams it through `receiveSnapshot`). As `install`.
    public func installSnapshot(
        _ snapshot: ReplicaSnapshot, completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        let receiver: ReplicaSnapshotReceiver
        do throws(DatabaseError) {
            receiver = try receiveSnapshot(generation: snapshot.generation, totalBytes: UInt64(snapshot.checkpoint.count))
            var offset = 0
            while offset < snapshot.checkpoint.count {
                let end = min(snapshot.checkpoint.count, offset + (4 << 20))
                try receiver.write(Array(snapshot.checkpoint[offset..<end]))
                offset = end
            }
        } catch {
            return completion(.failure(error))
        }
        receiver.install(crc32: CRC32.checksum(snapshot.checkpoint), completion: completion)
    }

    /// `ReplicaSnapshotReceiver.install`'s steps 3–6 (see there), between two commit rounds and
    /// with no checkpoint running.
    func replaceState(
        with temporary: any CheckpointTemporary, decoded: OrderedMap,
        completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        let generation = temporary.generation
        let logStore = self.logStore
        let snapshotStore = self.snapshotStore
        let map = self.map
        let committer = self.committer
        checkpointer.runExclusive({
            let replaced = Lock<Result<Void, DatabaseError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            committer.enqueue(.replaceLog(generation: generation, prepare: { () throws(DatabaseError) in
                try snapshotStore.writeMetadata(.resync, Array("installing checkpoint.\(generation)\n".utf8))
                for old in try snapshotStore.checkpointGenerations() { try snapshotStore.removeCheckpoint(old) }
                for old in try logStore.logGenerations() { try logStore.removeLog(old) }
                try snapshotStore.removeNewVersion()
                try snapshotStore.removeVersion()
                try temporary.commit()
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
        }, completion: { result in
            temporary.discard()  // nothing left to delete after a commit; else the temporary goes
            completion(result)
        })
    }

    /// Generations a primary may name: far below the largest number, so that this log can
    /// always start the next segment (a hostile or broken peer cannot make it overflow).
    static let largestReplicatedGeneration: UInt64 = 1 << 62

    /// Empties a data directory left incomplete by an interrupted snapshot install (see
    /// `ReplicaSnapshotReceiver`), so that it opens as a new, empty database: deletes every
    /// checkpoint, segment, marker and the `resync` marker last. Keeps the `replication` file. Does nothing
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
