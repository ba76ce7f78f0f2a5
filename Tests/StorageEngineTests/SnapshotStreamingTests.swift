import Dispatch
import Synchronization
import Testing
@testable import StorageEngine
import WireProtocol

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

private func manualCheckpoints() -> DatabaseOptions {
    var options = DatabaseOptions()
    options.checkpoints.enabled = false
    return options
}

private func wait<T: Sendable>(
    _ call: (@escaping @Sendable (Result<T, DatabaseError>) -> Void) -> Void
) -> Result<T, DatabaseError> {
    let result = Mutex<Result<T, DatabaseError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    call { outcome in
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }!
}

/// A resync streams the checkpoint: the primary reads it from disk in pieces
/// (`ReplicaSnapshotSource`), the replica writes the pieces to checkpoint.G.tmp as they arrive
/// and checks length and CRC before anything of its old state changes (`ReplicaSnapshotReceiver`).
@Suite("Snapshots stream through disk, never whole in memory")
struct SnapshotStreamingTests {
    /// A primary with 200 keys and its checkpoint file's bytes.
    private func primary() async throws -> (Database, FaultInjectingStore) {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        for index in 0..<200 { try await db.put(Key("p\(index)"), v("primary-\(index)")) }
        return (db, store)
    }

    @Test func theSourceKeepsReadingItsCheckpointAfterNewerCheckpointsDeleteIt() async throws {
        let (db, store) = try await primary()
        defer { db.close() }
        let source = try wait { db.snapshotSourceForReplica(completion: $0) }.get()
        defer { source.close() }
        let original = try #require(store.contents(of: "checkpoint.\(source.generation)"))
        _ = try await db.checkpoint()
        _ = try await db.checkpoint()
        #expect(store.contents(of: "checkpoint.\(source.generation)") == nil, "superseded and deleted")
        var streamed: [UInt8] = []
        while streamed.count < source.size {
            let piece = try source.read(from: streamed.count, maxBytes: 1000)
            #expect(piece.count <= 1000)
            if piece.isEmpty { break }
            streamed += piece
        }
        #expect(streamed == original)
    }

    @Test func piecesGoToTheTemporaryAsTheyArriveAndTheInstallReplacesTheState() async throws {
        let (primary, primaryStore) = try await primary()
        let source = try wait { primary.snapshotSourceForReplica(completion: $0) }.get()
        let bytes = try #require(primaryStore.contents(of: "checkpoint.\(source.generation)"))
        source.close()
        primary.close()

        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        try await replica.put("mine", v("old"))
        let receiver = try replica.receiveSnapshot(generation: source.generation, totalBytes: UInt64(bytes.count))
        let half = bytes.count / 2
        try receiver.write(Array(bytes[..<half]))
        let temporary = "checkpoint.\(source.generation).tmp"
        #expect(store.contents(of: temporary) == Array(bytes[..<half]), "written to disk as it arrives")
        #expect(try replica.get("mine") == v("old"), "nothing changes before the install")
        try receiver.write(Array(bytes[half...]))
        try wait { receiver.install(crc32: CRC32.checksum(bytes), completion: $0) }.get()
        #expect(replica.stats.keys == 200)
        #expect(try replica.get("mine") == nil)
        #expect(replica.logPosition == LogPosition(generation: source.generation, offset: 0))
        #expect(Set(store.durableFileNames()).subtracting(["LOCK"])
            == ["checkpoint.\(source.generation)", "logfile.\(source.generation)", "version"])
    }

    /// A short snapshot, a wrong CRC or one byte too many is refused before anything of the old
    /// state changes, and the temporary is deleted.
    @Test(arguments: ["short", "crc", "long"])
    func aDamagedStreamIsRefusedAndChangesNothing(damage: String) async throws {
        let (primary, _) = try await primary()
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        primary.close()
        let bytes = snapshot.checkpoint

        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        try await replica.put("keep", v("me"))
        let before = store.fileNames()
        let receiver = try replica.receiveSnapshot(generation: snapshot.generation, totalBytes: UInt64(bytes.count))
        switch damage {
        case "short":
            try receiver.write(Array(bytes.dropLast()))
        case "long":
            try receiver.write(bytes)
            #expect(throws: DatabaseError.replicaMismatch("the snapshot is longer than the \(bytes.count) bytes announced")) {
                try receiver.write([0])
            }
            receiver.abandon()  // as the follower does when a write is refused
            #expect(store.fileNames() == before, "the temporary is deleted and nothing else changed")
            #expect(try replica.get("keep") == v("me"))
            return
        default:
            try receiver.write(bytes)
        }
        let crc = damage == "crc" ? CRC32.checksum(bytes) ^ 1 : CRC32.checksum(bytes)
        let outcome = wait { receiver.install(crc32: crc, completion: $0) }
        guard case .failure(.replicaMismatch) = outcome else {
            Issue.record("a \(damage) snapshot gave \(outcome)")
            return
        }
        #expect(store.fileNames() == before, "the temporary is deleted and nothing else changed")
        #expect(try replica.get("keep") == v("me"))
        try await replica.put("still", v("writable"))
    }

    /// A snapshot whose own checkpoint checks fail (here: its header names another generation)
    /// is refused after arriving whole: the old state stays.
    @Test func aSnapshotForAnotherGenerationIsRefused() async throws {
        let (primary, _) = try await primary()
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        primary.close()
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        let before = store.fileNames()
        let receiver = try replica.receiveSnapshot(generation: snapshot.generation + 1, totalBytes: UInt64(snapshot.checkpoint.count))
        try receiver.write(snapshot.checkpoint)
        let outcome = wait { receiver.install(crc32: CRC32.checksum(snapshot.checkpoint), completion: $0) }
        guard case .failure(.corruptCheckpoint) = outcome else {
            Issue.record("got \(outcome)")
            return
        }
        #expect(store.fileNames() == before)
    }

    /// Power lost while pieces arrive: the old state opens, and the temporary is gone.
    @Test func aPowerLossWhileReceivingLeavesTheOldState() async throws {
        let (primary, _) = try await primary()
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        primary.close()
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        try await replica.put("old", v("state"))
        let receiver = try replica.receiveSnapshot(generation: snapshot.generation, totalBytes: UInt64(snapshot.checkpoint.count))
        try receiver.write(Array(snapshot.checkpoint.prefix(100)))
        store.powerLoss(keepUnsynced: { _, unsynced in unsynced })
        replica.close()
        receiver.abandon()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store)
        defer { reopened.close() }
        #expect(try reopened.get("old") == v("state"))
        #expect(reopened.stats.keys == 1)
        #expect(!store.fileNames().contains { $0.hasSuffix(".tmp") })
    }
}
