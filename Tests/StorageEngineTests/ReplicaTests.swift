import Foundation
import Platform
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Options for a database whose checkpoints run only when a test asks.
private func manualCheckpoints() -> DatabaseOptions {
    var options = DatabaseOptions.forTests
    options.checkpoints.enabled = false
    return options
}

/// A sink that records what the committer hands it, in order, and answers with `verdict`.
private final class RecordingSink: ReplicationSink {
    enum Event: Equatable {
        case records([UInt8], LogPosition)
        case segment(UInt64)
    }
    let events = Lock<[Event]>([])
    /// The batches `willSync` announced (before the local sync), by start.
    let announced = Lock<[LogPosition]>([])
    let verdict = Lock<ReplicationVerdict>(.acknowledge)

    func willSync(_ records: UnsafeRawBufferPointer, at start: LogPosition) {
        announced.withLock { $0.append(start) }
    }

    func replicate(_ records: UnsafeRawBufferPointer, at start: LogPosition) -> ReplicationVerdict {
        events.withLock { $0.append(.records(Array(records), start)) }
        return verdict.withLock { $0 }
    }

    func didStartSegment(_ generation: UInt64) {
        events.withLock { $0.append(.segment(generation)) }
    }
}


/// Replays a primary's sink events on a replica, as the replication layer does.
private func replay(_ events: [RecordingSink.Event], on replica: Database) throws {
    for event in events {
        switch event {
        case .records(let bytes, let start):
            _ = try wait { replica.applyReplicated(bytes, at: start, completion: $0) }.get()
        case .segment(let generation):
            try wait { replica.mirrorSegmentStart(generation, rotated: $0) }.get()
        }
    }
}

@Suite("The engine's replica side: byte-for-byte log shipping, mirrored segments, snapshots")
struct ReplicaTests {
    @Test func replayedRecordsMakeAByteIdenticalLogAndTheSameState() async throws {
        let primaryStore = FaultInjectingStore()
        let sink = RecordingSink()
        let primary = try Database.open(
            logStore: primaryStore, snapshotStore: primaryStore, options: manualCheckpoints(), replicationSink: sink)
        for index in 0..<20 { try await primary.put(Key("k\(index)"), v("v\(index)")) }
        try await primary.delete("k3")
        var batch = WriteBatch()
        batch.put("a", v("1"))
        batch.put("b", v("2"))
        try await primary.write(batch)
        _ = try await primary.checkpoint()
        try await primary.put("after", v("checkpoint"))

        let replicaStore = FaultInjectingStore()
        let replica = try Database.open(logStore: replicaStore, snapshotStore: replicaStore, options: manualCheckpoints())
        try replay(sink.events.withLock { $0 }, on: replica)

        #expect(replica.logPosition == primary.logPosition)
        #expect(replicaStore.contents(of: "logfile.1") == primaryStore.contents(of: "logfile.1"))
        #expect(try replica.get("k3") == nil)
        #expect(try replica.get("k19") == v("v19"))
        #expect(try replica.get("b") == v("2"))
        #expect(try replica.get("after") == v("checkpoint"))
        #expect(replica.stats.keys == primary.stats.keys)
        // The mirrored checkpoint finishes in the background; then the replica is at generation 1 too.
        #expect(try await TS.eventually { replica.stats.generation == 1 })
        replica.close()
        primary.close()

        let reopened = try Database.open(logStore: replicaStore, snapshotStore: replicaStore, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.get("after") == v("checkpoint"))
        #expect(reopened.stats.keys == 22)
    }

    @Test func recordsForAnotherPositionAreRefusedAndWriteNothing() async throws {
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        var record: [UInt8] = []
        WALEncoder.append([TS.set("k", "v")], to: &record)

        let gap = wait { replica.applyReplicated(record, at: LogPosition(generation: 0, offset: 10), completion: $0) }
        #expect(throws: DatabaseError.self) { try gap.get() }
        let wrongSegment = wait { replica.applyReplicated(record, at: LogPosition(generation: 1, offset: 0), completion: $0) }
        #expect(throws: DatabaseError.self) { try wrongSegment.get() }
        #expect(replica.logPosition == LogPosition(generation: 0, offset: 0))
        #expect(try replica.get("k") == nil)

        _ = try wait { replica.applyReplicated(record, at: LogPosition(generation: 0, offset: 0), completion: $0) }.get()
        #expect(try replica.get("k") == v("v"))
        #expect(replica.logPosition.offset == record.count)
        // A replay of the same records (an overlap) is refused too.
        let overlap = wait { replica.applyReplicated(record, at: LogPosition(generation: 0, offset: 0), completion: $0) }
        guard case .failure(.replicaMismatch) = overlap else {
            Issue.record("an overlapping replay gave \(overlap)")
            return
        }
    }

    @Test func recordsThatDoNotDecodeAreRefused() async throws {
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        var record: [UInt8] = []
        WALEncoder.append([TS.set("k", "v")], to: &record)
        let start = LogPosition(generation: 0, offset: 0)
        for bad in [Array(record.dropLast()), record + [0], [UInt8](repeating: 0xAB, count: 40), []] {
            let outcome = wait { replica.applyReplicated(bad, at: start, completion: $0) }
            guard case .failure(.replicaMismatch) = outcome else {
                Issue.record("\(bad.count) bad bytes gave \(outcome)")
                continue
            }
        }
        #expect(replica.logPosition == start)
        #expect(store.contents(of: "logfile.0") == [])
    }

    @Test func aMirroredSegmentMustBeTheNextOne() async throws {
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        let skipped = wait { replica.mirrorSegmentStart(2, rotated: $0) }
        guard case .failure(.replicaMismatch) = skipped else {
            Issue.record("mirroring logfile.2 after logfile.0 gave \(skipped)")
            return
        }
        try wait { replica.mirrorSegmentStart(1, rotated: $0) }.get()
        #expect(replica.logPosition == LogPosition(generation: 1, offset: 0))
    }

    @Test func aRefusingSinkFailsTheWritersWithNotReplicatedButTheWriteIsKept() async throws {
        let store = FaultInjectingStore()
        let sink = RecordingSink()
        sink.verdict.withLock { $0 = .refuse(reason: "no backup in sync") }
        let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints(), replicationSink: sink)
        await #expect(throws: DatabaseError.notReplicated(reason: "no backup in sync")) {
            try await db.put("k", v("v"))
        }
        // It is in the log, so it is applied: memory never disagrees with what recovery would find.
        #expect(try db.get("k") == v("v"))
        sink.verdict.withLock { $0 = .acknowledge }
        try await db.put("k2", v("v2"))
        db.close()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.get("k") == v("v"))
        #expect(try reopened.get("k2") == v("v2"))
    }

    @Test func theSinkHearsOfABatchBeforeItsSyncAndIsAskedToAcknowledgeOnlyAfterIt() async throws {
        let store = FaultInjectingStore()
        let sink = RecordingSink()
        let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints(), replicationSink: sink)
        defer { db.close() }
        try await db.put("a", v("1"))
        #expect(sink.announced.withLock { $0 } == [LogPosition(generation: 0, offset: 0)])
        #expect(sink.events.withLock { $0.count } == 1)
        // A batch whose local sync fails is announced but never handed over for acknowledgement.
        store.inject(.logSync)
        await #expect(throws: DatabaseError.self) { try await db.put("b", v("2")) }
        #expect(sink.announced.withLock { $0.count } == 2)
        #expect(sink.events.withLock { $0.count } == 1)
    }

    // MARK: Reading the log for a replica

    @Test func committedLogIsReadInWholeRecordsEvenWhenOneIsLargerThanTheChunk() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { db.close() }
        for index in 0..<10 { try await db.put(Key("k\(index)"), [UInt8](repeating: UInt8(index), count: 100)) }
        try await db.put("big", [UInt8](repeating: 7, count: 5000))
        try await db.put("last", v("x"))
        let end = db.logPosition.offset
        let whole = try #require(store.contents(of: "logfile.0"))

        var offset = 0
        var chunks = 0
        while offset < end {
            let chunk = try db.readCommittedLog(generation: 0, from: offset, maxBytes: 300, limit: end)
            #expect(!chunk.isEmpty)
            let outcome = chunk.withUnsafeBytes { raw in WALSegmentReader.scan(raw) { _ in } }
            #expect(outcome == .clean(endOffset: chunk.count), "chunk at \(offset) is not whole records")
            #expect(Array(whole[offset..<(offset + chunk.count)]) == chunk)
            offset += chunk.count
            chunks += 1
        }
        #expect(offset == end)
        #expect(chunks > 3)
        #expect(try db.readCommittedLog(generation: 0, from: end, maxBytes: 300, limit: end).isEmpty)
        // Nothing past the limit, even if the file holds more.
        let limited = try db.readCommittedLog(generation: 0, from: 0, maxBytes: 1 << 20, limit: 200)
        #expect(limited.count <= 200)
    }

    @Test func logPrefixChecksumIsTheCRCOfThePrefix() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { db.close() }
        for index in 0..<5 { try await db.put(Key("k\(index)"), v("value")) }
        let whole = try #require(store.contents(of: "logfile.0"))
        #expect(try db.logPrefixChecksum(generation: 0, length: whole.count) == CRC32.checksum(whole))
        #expect(try db.logPrefixChecksum(generation: 0, length: 10) == CRC32.checksum(Array(whole[..<10])))
        #expect(try db.logPrefixChecksum(generation: 0, length: 0) == CRC32.checksum([UInt8]()))
        #expect(try db.logPrefixChecksum(generation: 0, length: whole.count + 1) == nil)
        #expect(try db.logPrefixChecksum(generation: 4, length: 0) == nil)
    }

    // MARK: Snapshots

    @Test func installingASnapshotReplacesTheWholeStateAndTheDirectory() async throws {
        let primaryStore = FaultInjectingStore()
        let primary = try Database.open(logStore: primaryStore, snapshotStore: primaryStore, options: manualCheckpoints())
        for index in 0..<50 { try await primary.put(Key("p\(index)"), v("primary-\(index)")) }
        _ = try await primary.checkpoint()
        _ = try await primary.checkpoint()
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        #expect(snapshot.generation == 3)
        primary.close()

        // A replica with a diverged history of its own, further ahead in generations.
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        for index in 0..<10 { try await replica.put(Key("mine\(index)"), v("x")) }
        for _ in 0..<5 { _ = try await replica.checkpoint() }
        try await replica.put("tail", v("y"))

        try wait { replica.installSnapshot(snapshot, completion: $0) }.get()
        #expect(replica.logPosition == LogPosition(generation: 3, offset: 0))
        #expect(replica.stats.keys == 50)
        #expect(try replica.get("mine0") == nil)
        #expect(try replica.get("p49") == v("primary-49"))
        #expect(Set(store.durableFileNames()).subtracting(["LOCK"]) == ["checkpoint.3", "logfile.3", "version"])

        // It goes on as a replica from (3, 0), and reopens to the same state.
        var record: [UInt8] = []
        WALEncoder.append([TS.set("next", "1")], to: &record)
        _ = try wait { replica.applyReplicated(record, at: LogPosition(generation: 3, offset: 0), completion: $0) }.get()
        replica.close()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(reopened.stats.keys == 51)
        #expect(try reopened.get("next") == v("1"))
        #expect(reopened.stats.generation == 3)
    }

    @Test func aDamagedSnapshotIsRefusedAndChangesNothing() async throws {
        let store = FaultInjectingStore()
        let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
        defer { replica.close() }
        try await replica.put("keep", v("me"))
        let before = store.durableFileNames()
        var writer = CheckpointWriter(generation: 2, entryCount: 1)
        writer.append(key: UnsafeRawBufferPointer(start: nil, count: 0), value: UnsafeRawBufferPointer(start: nil, count: 0))
        var bytes = writer.finish()
        bytes[bytes.count - 1] ^= 0xFF
        let outcome = wait { replica.installSnapshot(ReplicaSnapshot(generation: 2, checkpoint: bytes), completion: $0) }
        guard case .failure(.corruptCheckpoint) = outcome else {
            Issue.record("a damaged snapshot gave \(outcome)")
            return
        }
        #expect(store.durableFileNames() == before)
        #expect(try replica.get("keep") == v("me"))
        try await replica.put("still", v("writable"))
    }

    @Test func aPowerLossDuringAnInstallLeavesADirectoryThatIsRefusedThenDiscarded() async throws {
        let primaryStore = FaultInjectingStore()
        let primary = try Database.open(logStore: primaryStore, snapshotStore: primaryStore, options: manualCheckpoints())
        for index in 0..<20 { try await primary.put(Key("p\(index)"), v("v")) }
        let snapshot = try wait { primary.snapshotForReplica(completion: $0) }.get()
        primary.close()

        // Cut the power at each directory operation of the install in turn.
        var step = 0
        while true {
            let store = FaultInjectingStore()
            let replica = try Database.open(logStore: store, snapshotStore: store, options: manualCheckpoints())
            try await replica.put("old", v("state"))
            store.inject(.directory, skip: step, effect: .powerLoss)
            let outcome = wait { replica.installSnapshot(snapshot, completion: $0) }
            replica.close()
            store.powerOn()
            store.clearFaults()
            if case .success = outcome { break }  // the install needed fewer operations than `step`
            do {
                let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
                // Opens only if the power went before the marker or after the install was whole.
                let keys = reopened.stats.keys
                #expect(keys == 1 || keys == 20, "step \(step): a mixed state of \(keys) keys")
                reopened.close()
            } catch DatabaseError.incompleteResync {
                #expect(try Database.discardIncompleteResync(logStore: store, snapshotStore: store))
                let emptied = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
                #expect(emptied.stats.keys == 0, "step \(step)")
                emptied.close()
            }
            step += 1
            #expect(step < 40, "the install never completed")
            if step >= 40 { break }
        }
        #expect(step > 3)
    }

    @Test func backgroundCheckpointsCanBeSwitchedOnLater() async throws {
        var options = DatabaseOptions.forTests
        options.checkpoints.enabled = false
        options.checkpoints.updates = 5
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: options)
        defer { db.close() }
        for index in 0..<20 { try await db.put(Key("k\(index)"), v("v")) }
        #expect(db.stats.checkpoints == 0)
        db.setBackgroundCheckpoints(enabled: true)
        try await db.put("one more", v("v"))
        #expect(try await TS.eventually { db.stats.checkpoints > 0 })
    }

    @Test func replicationMetadataIsKeptDurably() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        #expect(try db.readReplicationMetadata() == nil)
        try db.writeReplicationMetadata([1, 2, 3])
        try db.writeReplicationMetadata([4, 5])
        db.close()
        _ = store.powerLoss()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.readReplicationMetadata() == [4, 5])
    }
}
