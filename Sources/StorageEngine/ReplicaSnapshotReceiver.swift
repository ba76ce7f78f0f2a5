import Platform
import WireProtocol

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
