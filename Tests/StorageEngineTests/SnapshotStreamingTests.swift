#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

private func manualCheckpoints() -> DatabaseOptions {
    var options = DatabaseOptions.forTests
    options.checkpoints.enabled = false
    return options
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
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.get("old") == v("state"))
        #expect(reopened.stats.keys == 1)
        #expect(!store.fileNames().contains { $0.hasSuffix(".tmp") })
    }

    /// A primary announcing more bytes than the replica's file system has free (hostile, or
    /// broken) is refused at the announcement, before checkpoint.G.tmp exists: it cannot fill the
    /// disk under the replica's old state. Before the fix any size was taken, and the pieces written
    /// until the disk was full.
    @Test func aSnapshotLargerThanTheFreeDiskIsRefusedBeforeAnythingIsWritten() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let replica = try Database.open(directory: directory, options: manualCheckpoints())
            defer { replica.close() }
            try await replica.put("keep", v("me"))
            let before = try TestSupport.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) {
                _ = try replica.receiveSnapshot(generation: 3, totalBytes: 1 << 61)
            }
            guard case .io(_, let path, let code) = error else {
                Issue.record("expected an ENOSPC io error, got \(String(describing: error))")
                return
            }
            #expect(code == ENOSPC)
            #expect(path.hasSuffix("checkpoint.3.tmp"), "\(path)")
            #expect(try TestSupport.snapshot(directory) == before, "nothing was written")
            #expect(try replica.get("keep") == v("me"))
        }
    }

    /// The power cut at every step of an install, from the first piece written to the marker's
    /// removal (each checkpoint write, marker write, directory change and read): the directory then
    /// opens with the old state whole or the new one whole, or it holds the `resync` marker and
    /// refuses to open; `discardIncompleteResync` then empties it and it opens empty. No other
    /// outcome, and no temporary survives an open.
    @Test func aPowerLossAtEveryStepOfAnInstallLeavesOneWholeStateOrTheMarker() async throws {
        let (primary, _) = try await primary()
        _ = try await primary.checkpoint()  // the snapshot's generation is not the replica's
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        primary.close()
        let crc = CRC32.checksum(snapshot.checkpoint)

        func replica() async throws -> (Database, FaultInjectingStore) {
            let store = FaultInjectingStore()
            let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
            for index in 0..<5 { try await db.put(Key("old-\(index)"), v("old")) }
            _ = try await db.checkpoint()
            try await db.put("old-logged", v("old"))
            return (db, store)
        }
        func install(_ db: Database) -> Result<Void, DatabaseError> {
            do throws(DatabaseError) {
                let receiver = try db.receiveSnapshot(generation: snapshot.generation, totalBytes: UInt64(snapshot.checkpoint.count))
                let third = snapshot.checkpoint.count / 3
                try receiver.write(Array(snapshot.checkpoint[..<third]))
                try receiver.write(Array(snapshot.checkpoint[third..<(2 * third)]))
                try receiver.write(Array(snapshot.checkpoint[(2 * third)...]))
                return wait { receiver.install(crc32: crc, completion: $0) }
            } catch {
                return .failure(error)
            }
        }

        let kinds: [FaultInjectingStore.Operation] = [.checkpointWrite, .markerWrite, .directory, .read]
        let (dry, dryStore) = try await replica()
        let before = kinds.map { dryStore.operationCount($0) }
        try install(dry).get()
        let counts = zip(kinds, before).map { dryStore.operationCount($0) - $1 }
        dry.close()
        #expect(counts[kinds.firstIndex(of: .directory)!] >= 6, "the install's directory steps were counted: \(counts)")

        var outcomes: Set<String> = []
        for (kind, count) in zip(kinds, counts) {
            for index in 0..<count {
                let step = "power lost at \(kind) #\(index)"
                let (db, store) = try await replica()
                store.inject(kind, skip: index, effect: .powerLoss)
                _ = install(db)
                #expect(!store.isPoweredOn, "\(step): the fault fired")
                db.close()
                store.powerOn()
                let opened = Result { () throws(DatabaseError) in try Database.open(logStore: store, snapshotStore: store, options: .forTests) }
                if case .failure(.incompleteResync) = opened {
                    outcomes.insert("marker")
                    #expect(try Database.discardIncompleteResync(logStore: store, snapshotStore: store), "\(step)")
                    let emptied = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
                    #expect(emptied.stats.keys == 0, "\(step)")
                    emptied.close()
                    #expect(!store.fileNames().contains { $0.hasSuffix(".tmp") }, "\(step): \(store.fileNames())")
                    continue
                }
                let reopened = try opened.get()
                defer { reopened.close() }
                #expect(!store.fileNames().contains { $0.hasSuffix(".tmp") }, "\(step): \(store.fileNames())")
                if try reopened.get("old-logged") != nil {
                    outcomes.insert("old")
                    #expect(reopened.stats.keys == 6, "\(step): the old state, whole")
                    #expect(try reopened.get("old-4") == v("old"), "\(step)")
                } else {
                    outcomes.insert("new")
                    #expect(reopened.stats.keys == 200, "\(step): the new state, whole")
                    #expect(try reopened.get("p199") == v("primary-199"), "\(step)")
                    #expect(reopened.logPosition == LogPosition(generation: snapshot.generation, offset: 0), "\(step)")
                }
            }
        }
        #expect(outcomes.isSuperset(of: ["old", "marker"]), "\(outcomes)")
    }
}
