#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Platform
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

    /// A checkpoint to bootstrap a replica from: runs a checkpoint, then opens the file it wrote,
    /// to be read in pieces (`ReplicaSnapshotSource`) and streamed: the file is never held in
    /// memory, and it stays readable even if a newer checkpoint deletes it meanwhile. The replica
    /// then streams from (generation, 0). Retries if a concurrent checkpoint deletes the file
    /// before it is opened.
    public func snapshotSourceForReplica(
        completion: @escaping @Sendable (Result<ReplicaSnapshotSource, DatabaseError>) -> Void
    ) {
        snapshotSourceForReplica(attempts: 3, completion: completion)
    }

    private func snapshotSourceForReplica(
        attempts: Int, completion: @escaping @Sendable (Result<ReplicaSnapshotSource, DatabaseError>) -> Void
    ) {
        checkpoint { result in
            switch result {
            case .failure(let error):
                completion(.failure(error))
            case .success(let written):
                do throws(DatabaseError) {
                    let file = try self.snapshotStore.openCheckpoint(written.generation)
                    completion(.success(ReplicaSnapshotSource(generation: written.generation, file: file)))
                } catch {
                    if attempts > 1 {
                        self.snapshotSourceForReplica(attempts: attempts - 1, completion: completion)
                    } else {
                        completion(.failure(error))
                    }
                }
            }
        }
    }

    /// The whole checkpoint as one buffer (for tests and tools; replication streams it through
    /// `snapshotSourceForReplica`).
    public func snapshotForReplica(completion: @escaping @Sendable (Result<ReplicaSnapshot, DatabaseError>) -> Void) {
        snapshotSourceForReplica { result in
            completion(result.flatMap { (source) -> Result<ReplicaSnapshot, DatabaseError> in
                defer { source.close() }
                var bytes: [UInt8] = []
                while bytes.count < source.size {
                    do throws(DatabaseError) {
                        let piece = try source.read(from: bytes.count, maxBytes: 4 << 20)
                        guard !piece.isEmpty else { break }
                        bytes += piece
                    } catch {
                        return .failure(error)
                    }
                }
                return .success(ReplicaSnapshot(generation: source.generation, checkpoint: bytes))
            })
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

/// A primary's checkpoint file open for streaming to a replica (`Database.snapshotSourceForReplica`):
/// read it in pieces, then `close` it. The replica's log continues at (generation, 0).
public final class ReplicaSnapshotSource: Sendable {
    public let generation: UInt64
    private let file: any CheckpointFile

    init(generation: UInt64, file: any CheckpointFile) {
        self.generation = generation
        self.file = file
    }

    deinit { file.close() }

    /// The file's size in bytes.
    public var size: Int { file.size }

    /// Up to `maxBytes` from `offset`: fewer only at the end of the file.
    public func read(from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        try file.read(from: offset, maxBytes: maxBytes)
    }

    public func close() { file.close() }
}

/// A primary's checkpoint arriving piece by piece on a replica (`Database.receiveSnapshot`).
///
/// The steps, in order (steps 3–6 between two commit rounds and with no checkpoint running):
/// 1. `write` each piece to checkpoint.G.tmp as it arrives (more than the announced size is refused).
/// 2. `install`: the length and the CRC-32 the primary sent must match what arrived; fsync the
///    temporary, then decode and verify it, read back in bounded chunks (the checkpoint's own
///    header, generation and CRC). Nothing has changed so far: any failure deletes the temporary.
/// 3. Write the `resync` marker: from here until step 6 the directory is incomplete, and
///    recovery refuses to open it (`DatabaseError.incompleteResync`).
/// 4. Delete every checkpoint, segment, `version` and `newVersion`.
/// 5. Rename checkpoint.G.tmp to checkpoint.G, create logfile.G, write `version` G.
/// 6. Delete the marker, then swap the in-memory state.
/// A failure in steps 3–6 disables writes (the directory's state is unknown until reopened). A
/// crash before step 3 leaves the old state and a temporary that recovery deletes.
///
/// What must stay true: nothing else writes checkpoint.G.tmp meanwhile. A replica's checkpoints
/// only mirror its primary's, from the stream, which the snapshot precedes; background
/// checkpoints are off on a replica. `abandon` (or dropping the receiver) deletes the temporary.
///
/// `@unchecked Sendable`: used by one thread at a time (the replication follower); its counters
/// are behind a lock anyway.
public final class ReplicaSnapshotReceiver: @unchecked Sendable {
    public let generation: UInt64
    public let totalBytes: UInt64
    private let database: Database
    private let temporary: any CheckpointTemporary
    private struct Progress {
        var received: UInt64 = 0
        var crc = CRC32()
        /// `install` was called: the temporary is the install's now (it deletes it if it fails).
        var handedOver = false
    }
    private let progress = Lock(Progress())

    init(database: Database, temporary: any CheckpointTemporary, totalBytes: UInt64) {
        self.database = database
        self.temporary = temporary
        self.generation = temporary.generation
        self.totalBytes = totalBytes
    }

    deinit {
        if !progress.withLock({ $0.handedOver }) { temporary.discard() }
    }

    /// Bytes received so far.
    public var receivedBytes: UInt64 { progress.withLock { $0.received } }

    /// Step 1: appends the next piece. More than `totalBytes` in all is refused.
    public func write(_ piece: [UInt8]) throws(DatabaseError) {
        try progress.withLock { (progress) throws(DatabaseError) in
            guard progress.received + UInt64(piece.count) <= totalBytes else {
                throw .replicaMismatch("the snapshot is longer than the \(totalBytes) bytes announced")
            }
            try temporary.write(piece)
            progress.received += UInt64(piece.count)
            progress.crc.update(piece)
        }
    }

    /// Steps 2–6. `crc32` is what the primary sent for the whole file.
    public func install(crc32: UInt32, completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void) {
        let (received, computed) = progress.withLock { progress in
            progress.handedOver = true
            return (progress.received, progress.crc.value)
        }
        guard received == totalBytes, computed == crc32 else {
            temporary.discard()
            return completion(.failure(.replicaMismatch(
                "the snapshot arrived damaged (\(received) of \(totalBytes) bytes, CRC \(computed == crc32 ? "matches" : "mismatch"))")))
        }
        let decoded: OrderedMap
        do throws(DatabaseError) {
            try temporary.sync()
            let file = try temporary.openForReading()
            defer { file.close() }
            decoded = try Recovery.decodeCheckpoint(file, generation: generation, file: "the primary's checkpoint.\(generation)").map
        } catch {
            temporary.discard()
            return completion(.failure(error))
        }
        database.replaceState(with: temporary, decoded: decoded, completion: completion)
    }

    /// Deletes what arrived; nothing else changes. Does nothing once `install` was called.
    public func abandon() {
        if !progress.withLock({ $0.handedOver }) { temporary.discard() }
    }
}

/// A primary's checkpoint file in one buffer (tests and tools): the replica's log continues at
/// (generation, 0).
public struct ReplicaSnapshot: Sendable {
    public var generation: UInt64
    public var checkpoint: [UInt8]

    public init(generation: UInt64, checkpoint: [UInt8]) {
        self.generation = generation
        self.checkpoint = checkpoint
    }
}
