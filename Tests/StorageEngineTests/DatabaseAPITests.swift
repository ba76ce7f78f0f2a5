import Foundation
import Platform
import Synchronization
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Opens a fresh database in `directory`/db (created), runs `body`, and closes it.
private func withNewDatabase<R>(
    options: DatabaseOptions = .forTests,
    _ body: (Database, String) async throws -> R
) async throws -> R {
    try await TS.withTemporaryDirectory { root in
        let directory = root + "/db"
        let db = try Database.open(directory: directory, create: true, options: options)
        defer { db.close() }
        return try await body(db, directory)
    }
}

/// `submit` as an async call: the completion's result.
private func submitAndWait(_ db: Database, _ batch: WriteBatch) async throws -> Result<UInt64, DatabaseError> {
    try await withCheckedThrowingContinuation { continuation in
        do {
            try db.submit(batch) { continuation.resume(returning: $0) }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

@Suite("Database API over the real FileStore", .opensDataDirectories)
struct DatabaseAPITests {
    // MARK: put / get / delete

    @Test func putThenGetReturnsTheValue() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("hello", v("world"))
            #expect(try db.get("hello") == v("world"))
        }
    }

    @Test func getOfAMissingKeyReturnsNil() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("present", v("1"))
            #expect(try db.get("absent") == nil)
        }
    }

    @Test func putOverwritesThePreviousValue() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("k", v("first"))
            try await db.put("k", v("second"))
            #expect(try db.get("k") == v("second"))
            #expect(db.stats.keys == 1)
        }
    }

    @Test func deleteRemovesTheKey() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("k", v("value"))
            try await db.put("other", v("stays"))
            try await db.delete("k")
            #expect(try db.get("k") == nil)
            #expect(try db.get("other") == v("stays"))
            #expect(db.stats.keys == 1)
        }
    }

    @Test func deleteOfAMissingKeyIsNotAnError() async throws {
        try await withNewDatabase { db, _ in
            try await db.delete("never-written")
            #expect(try db.get("never-written") == nil)
            #expect(db.stats.keys == 0)
        }
    }

    @Test func emptyValueIsStoredAndIsNotAMissingKey() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("empty", [])
            #expect(try db.get("empty") == [])
            #expect(db.stats.keys == 1)
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("empty") == [])
        }
    }

    @Test func arbitraryByteKeysAndValuesRoundTripThroughLogAndCheckpoint() async throws {
        let pairs: [([UInt8], [UInt8])] = [
            ([0x00], [0x00]),
            ([0x00, 0x00, 0x00], [0xFF, 0x00, 0xFF]),
            ([0x61], v("plain a")),
            ([0x61, 0x00], v("a then NUL: a different key")),
            ([0xFF], Array(repeating: 0xFF, count: 1000)),
            ([0xC3, 0x28], (0...255).map { UInt8($0) }),  // not UTF-8
            ([0xFF, 0xFE, 0x80, 0x00, 0x7F], []),
            (Array(repeating: 0xAB, count: 15), v("15 bytes: inline")),
            (Array(repeating: 0xAB, count: 16), v("16 bytes: heap")),
            ((0..<200).map { UInt8($0) }, (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
        ]
        func check(_ db: Database) throws {
            for (key, value) in pairs {
                #expect(try db.get(Key(key)) == value, "key \(Key(key))")
            }
            #expect(db.stats.keys == pairs.count)
        }
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            for (key, value) in pairs { try await db.put(Key(key), value) }
            try check(db)
            db.close()

            let fromLog = try Database.open(directory: directory, options: .forTests)
            try check(fromLog)
            #expect(fromLog.recovery.recordsReplayed == pairs.count)
            _ = try await fromLog.checkpoint()
            fromLog.close()

            let fromCheckpoint = try Database.open(directory: directory, options: .forTests)
            defer { fromCheckpoint.close() }
            #expect(fromCheckpoint.recovery.checkpointEntries == pairs.count)
            #expect(fromCheckpoint.recovery.recordsReplayed == 0)
            try check(fromCheckpoint)
        }
    }

    // MARK: WriteBatch

    @Test func writeBatchAppliesMixedPutsAndDeletes() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("old1", v("x"))
            try await db.put("old2", v("y"))
            var batch = WriteBatch()
            batch.put("new1", v("1"))
            batch.delete("old1")
            batch.put("new2", v("2"))
            batch.put("old2", v("y2"))
            try await db.write(batch)
            #expect(try db.get("new1") == v("1"))
            #expect(try db.get("new2") == v("2"))
            #expect(try db.get("old1") == nil)
            #expect(try db.get("old2") == v("y2"))
            #expect(db.stats.keys == 3)
        }
    }

    @Test func writeBatchWithTheSameKeyTwiceKeepsTheLastChange() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("deleted-last", v("before"))
            var batch = WriteBatch()
            batch.put("put-twice", v("first"))
            batch.put("put-twice", v("second"))
            batch.put("deleted-last", v("during"))
            batch.delete("deleted-last")
            batch.delete("put-last")
            batch.put("put-last", v("wins"))
            try await db.write(batch)
            func check(_ db: Database) throws {
                #expect(try db.get("put-twice") == v("second"))
                #expect(try db.get("deleted-last") == nil)
                #expect(try db.get("put-last") == v("wins"))
                #expect(db.stats.keys == 2)
            }
            try check(db)
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            try check(reopened)
        }
    }

    @Test func writeBatchIsOneLogRecordHoldingEveryChange() async throws {
        try await withNewDatabase { db, directory in
            var batch = WriteBatch()
            batch.put("a", v("1"))
            batch.delete("b")
            batch.put("c", [])
            try await db.write(batch)
            // While open, the file also holds zeros written ahead of the records.
            let file = try TS.readFile(directory + "/logfile.0")
            let end = db.stats.logPosition.offset
            #expect(file[end...].allSatisfy { $0 == 0 })
            let log = Array(file[..<end])
            var records: [[WALMutation]] = []
            let outcome = log.withUnsafeBytes { raw in
                WALSegmentReader.scan(raw) { record in records.append(record.mutations) }
            }
            #expect(outcome == .clean(endOffset: log.count))
            #expect(records == [[.set(key: v("a"), value: v("1")), .delete(key: v("b")), .set(key: v("c"), value: [])]])
        }
    }

    @Test func writeBatchIsAtomicWhenItsRecordIsTorn() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("before", v("kept"))
            let sizeBefore = db.stats.walBytes
            var batch = WriteBatch()
            for index in 0..<10 { batch.put(Key("batch-\(index)"), v("value-\(index)")) }
            batch.delete("before")
            try await db.write(batch)
            db.close()
            // A crash that left all but the last byte of the batch's record on disk.
            let path = directory + "/logfile.0"
            try TS.writeFile(path, Array(try TS.readFile(path).dropLast()))

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("before") == v("kept"))
            for index in 0..<10 { #expect(try reopened.get(Key("batch-\(index)")) == nil) }
            #expect(reopened.recovery.tornTail?.offset == sizeBefore)
        }
    }

    @Test func emptyWriteBatchIsAcceptedAndChangesNothing() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("k", v("1"))
            try await db.write(WriteBatch())
            try await db.put("after", v("2"))
            #expect(db.stats.keys == 2)
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.tornTail == nil)
            #expect(try reopened.get("k") == v("1"))
            #expect(try reopened.get("after") == v("2"))
        }
    }

    // MARK: submit (the non-blocking path)

    @Test func submitCallsItsCompletionOnceWithSuccessWhenTheBatchIsVisible() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            let calls = Atomic<Int>(0)
            let seenInCompletion = Lock<[UInt8]?>(nil)
            var batch = WriteBatch()
            batch.put("submitted", v("value"))
            let result: Result<UInt64, DatabaseError> = try await withCheckedThrowingContinuation { continuation in
                do {
                    try db.submit(batch) { result in
                        calls.add(1, ordering: .relaxed)
                        seenInCompletion.withLock { $0 = try? db.get("submitted") }
                        continuation.resume(returning: result)
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            #expect(throws: Never.self) { try result.get() }
            #expect(seenInCompletion.withLock { $0 } == v("value"))
            db.close()  // waits for the committer: no completion can come after this
            #expect(calls.load(ordering: .relaxed) == 1)

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("submitted") == v("value"))
        }
    }

    @Test func submitOfAnInvalidBatchThrowsAtOnceAndNeverCompletes() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            let calls = Atomic<Int>(0)
            var batch = WriteBatch()
            batch.put("good", v("1"))
            batch.put("", v("2"))
            #expect(throws: DatabaseError.emptyKey) {
                try db.submit(batch) { _ in calls.add(1, ordering: .relaxed) }
            }
            #expect(db.stats.walBytes == 0)
            db.close()
            #expect(calls.load(ordering: .relaxed) == 0)
        }
    }

    // MARK: checkpoint

    @Test func checkpointSwitchesToTheNextGenerationAndReportsIt() async throws {
        try await withNewDatabase { db, directory in
            for index in 0..<5 { try await db.put(Key("k\(index)"), v("\(index)")) }
            try await db.delete("k0")
            let result = try await db.checkpoint()
            #expect(result.generation == 1)
            #expect(result.keys == 4)
            #expect(db.stats.generation == 1)
            #expect(try TS.listing(directory) == ["version", "checkpoint.1", "logfile.1"])
            #expect(try TS.marker(directory, "version") == "1\n")
            #expect(try db.get("k3") == v("3"))
        }
    }

    // MARK: stats

    @Test func statsOfAFreshDatabaseAreZero() async throws {
        try await withNewDatabase { db, _ in
            let stats = db.stats
            #expect(stats.keys == 0)
            #expect(stats.bytes == 0)
            #expect(stats.walBytes == 0)
            #expect(stats.generation == 0)
            #expect(stats.logPosition == LogPosition(generation: 0, offset: 0))
            let counters: [Int] = [stats.puts, stats.deletes, stats.writes, stats.batches, stats.syncs, stats.gets, stats.listings, stats.checkpoints]
            #expect(counters == [0, 0, 0, 0, 0, 0, 0, 0])
            #expect(stats.lastCheckpointDuration == nil)
            #expect(stats.failedCheckpoints == 0)
            #expect(stats.writesDisabledReason == nil)
        }
    }

    @Test func statsCountKeysBytesLogAndOperations() async throws {
        try await withNewDatabase { db, directory in
            try await db.put("a", v("xyz"))
            try await db.put("b", [])
            try await db.delete("a")
            var batch = WriteBatch()
            batch.put("c", v("12"))
            batch.delete("b")
            try await db.write(batch)
            _ = try db.get("a")
            _ = try db.get("c")
            _ = try db.list(.all)
            _ = try db.listStored(.prefix("c"))
            _ = try db.count(.all)
            _ = try db.storedEntry(for: "c")  // counted in neither

            let recordSizes = [
                WALEncoder.recordSize(of: [.set(key: v("a"), value: v("xyz"))]),
                WALEncoder.recordSize(of: [.set(key: v("b"), value: [])]),
                WALEncoder.recordSize(of: [.delete(key: v("a"))]),
                WALEncoder.recordSize(of: [.set(key: v("c"), value: v("12")), .delete(key: v("b"))]),
            ]
            let stats = db.stats
            // The records end at walBytes; only zeros written ahead follow them while it is open.
            let file = try TS.readFile(directory + "/logfile.0")
            #expect(file[stats.walBytes...].allSatisfy { $0 == 0 })
            let logSize = Array(file[..<stats.walBytes]).withUnsafeBytes { raw in
                WALSegmentReader.scan(raw) { _ in }.validPrefixLength
            }
            #expect(stats.keys == 1)
            #expect(stats.bytes == 3)  // "c" + "12"
            #expect(stats.walBytes == recordSizes.reduce(0, +))
            #expect(stats.walBytes == logSize)
            #expect(stats.generation == 0)
            #expect(stats.logPosition == LogPosition(generation: 0, offset: logSize))
            #expect(stats.puts == 3)
            #expect(stats.deletes == 2)
            #expect(stats.writes == 4)
            #expect(stats.batches == 1)
            #expect(stats.syncs == 4)  // each write was awaited before the next: one round each
            #expect(stats.gets == 2)
            #expect(stats.listings == 3)
            #expect(stats.checkpoints == 0)
        }
    }

    @Test func statsAfterACheckpointShowTheNewGenerationAndAnEmptyLog() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("a", v("1"))
            try await db.put("b", v("22"))
            _ = try await db.checkpoint()
            let stats = db.stats
            #expect(stats.checkpoints == 1)
            #expect(stats.generation == 1)
            #expect(stats.walBytes == 0)
            #expect(stats.logPosition == LogPosition(generation: 1, offset: 0))
            #expect(stats.lastCheckpointDuration != nil)
            #expect(stats.keys == 2)
            #expect(stats.bytes == 5)

            try await db.put("c", v("3"))
            let record = WALEncoder.recordSize(of: [.set(key: v("c"), value: v("3"))])
            #expect(db.stats.walBytes == record)
            #expect(db.stats.logPosition == LogPosition(generation: 1, offset: record))
        }
    }

    // MARK: close and reopen

    @Test func everyOperationFailsWithClosedAfterClose() async throws {
        try await withNewDatabase { db, _ in
            try await db.put("k", v("1"))
            db.close()
            #expect(throws: DatabaseError.closed) { try db.get("k") }
            await #expect(throws: DatabaseError.closed) { try await db.put("k", v("2")) }
            await #expect(throws: DatabaseError.closed) { try await db.delete("k") }
            var batch = WriteBatch()
            batch.put("x", v("1"))
            await #expect(throws: DatabaseError.closed) { try await db.write(batch) }
            await #expect(throws: DatabaseError.closed) { _ = try await db.checkpoint() }
            let submitted = try await submitAndWait(db, batch)
            #expect(throws: DatabaseError.closed) { try submitted.get() }
            let checkpointed: Result<CheckpointResult, DatabaseError> = await withCheckedContinuation { continuation in
                db.checkpoint { continuation.resume(returning: $0) }
            }
            #expect(throws: DatabaseError.closed) { try checkpointed.get() }
        }
    }

    /// Reopening is the remedy for `.writesDisabled`, so a closed database must not keep its map
    /// (a retain cycle through the committer's after-round hook kept everything alive).
    @Test func aClosedDatabaseIsFreedWithItsStoresAndItsMap() async throws {
        try await TS.withTemporaryDirectory { directory in
            final class WeakReferences: @unchecked Sendable {
                weak var database: Database?
                weak var map: OrderedMap?
                weak var committer: GroupCommitter?
                weak var checkpointer: Checkpointer?
                weak var logStore: AnyObject?
                weak var snapshotStore: AnyObject?
                var allGone: Bool {
                    database == nil && map == nil && committer == nil && checkpointer == nil
                        && logStore == nil && snapshotStore == nil
                }
            }
            let references = WeakReferences()
            // In a function of its own, so that no strong reference outlives it in this frame.
            func openFillAndClose() async throws {
                let db = try Database.open(directory: directory, create: true, options: .forTests)
                references.database = db
                references.map = db.map
                references.committer = db.committer
                references.checkpointer = db.checkpointer
                references.logStore = db.logStore
                references.snapshotStore = db.snapshotStore
                for index in 0..<100 { try await db.put(Key("k\(index)"), v("\(index)")) }
                _ = try await db.checkpoint()
                try await db.put("after", v("checkpoint"))
                db.close()
            }
            try await openFillAndClose()
            // The committer's thread drops its reference just after close returns: wait for a
            // state that, once reached, lasts.
            #expect(try await TS.eventually { references.allGone },
                    "still alive after close: database \(references.database != nil), map \(references.map != nil), committer \(references.committer != nil), checkpointer \(references.checkpointer != nil), stores \(references.logStore != nil)/\(references.snapshotStore != nil)")
        }
    }

    @Test func closeFinishesEveryWriteAlreadySubmitted() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            let results = Lock<[Int: Result<UInt64, DatabaseError>]>([:])
            for index in 0..<200 {
                var batch = WriteBatch()
                batch.put(Key("k\(index)"), v("\(index)"))
                try db.submit(batch) { result in results.withLock { $0[index] = result } }
            }
            db.close()
            let completed = results.withLock { $0 }
            #expect(completed.count == 200, "close returned before every submitted write completed")
            #expect(completed.values.allSatisfy { (try? $0.get()) != nil })

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.stats.keys == 200)
            #expect(try reopened.get("k199") == v("199"))
        }
    }

    @Test func closeIsIdempotent() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("k", v("1"))
            db.close()
            db.close()
            #expect(throws: DatabaseError.closed) { try db.get("k") }
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("k") == v("1"))
        }
    }

    @Test func reopenShowsEveryAcknowledgedChange() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            for index in 0..<50 { try await db.put(Key("key-\(index)"), v("value-\(index)")) }
            for index in stride(from: 0, to: 50, by: 5) { try await db.delete(Key("key-\(index)")) }
            try await db.put("key-1", v("overwritten"))
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.recordsReplayed == 61)
            #expect(reopened.stats.keys == 40)
            #expect(reopened.recovery.keys == 40)
            #expect(try reopened.get("key-1") == v("overwritten"))
            #expect(try reopened.get("key-2") == v("value-2"))
            #expect(try reopened.get("key-5") == nil)
            #expect(reopened.recovery.initialized == false)
        }
    }

    // MARK: Opening

    @Test func openingAMissingDirectoryWithoutCreateFailsAndCreatesNothing() async throws {
        try await TS.withTemporaryDirectory { root in
            let directory = root + "/missing"
            #expect(throws: DatabaseError.directoryMissing(path: directory)) {
                try Database.open(directory: directory, options: .forTests)
            }
            #expect(!TS.fileExists(directory))
        }
    }

    @Test func openingWithCreateMakesNestedDirectoriesAndInitialisesThem() async throws {
        try await TS.withTemporaryDirectory { root in
            let directory = root + "/a/b/c"
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            defer { db.close() }
            #expect(db.recovery.initialized)
            #expect(try TS.listing(directory) == ["version", "logfile.0"])
            #expect(try TS.marker(directory, "version") == "0\n")
            #expect(try TS.fileSize(directory + "/logfile.0") == 0)
            #expect(TS.fileExists(directory + "/LOCK"))
        }
    }

    @Test func openingAnExistingEmptyDirectoryWithoutCreateInitialisesIt() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(db.recovery.initialized)
            #expect(try TS.listing(directory) == ["version", "logfile.0"])
        }
    }

    // MARK: Limits and refusals

    @Test func emptyKeyIsRefusedByEveryWrite() async throws {
        try await withNewDatabase { db, _ in
            await #expect(throws: DatabaseError.emptyKey) { try await db.put("", v("1")) }
            await #expect(throws: DatabaseError.emptyKey) { try await db.delete("") }
            var batch = WriteBatch()
            batch.put("fine", v("1"))
            batch.delete(Key([UInt8]()))
            await #expect(throws: DatabaseError.emptyKey) { try await db.write(batch) }
        }
    }

    @Test func keyOverTheConfiguredLimitIsRefusedWithItsSizeAndTheLimit() async throws {
        var options = DatabaseOptions.forTests
        options.limits.maxKeySize = 8
        try await withNewDatabase(options: options) { db, _ in
            try await db.put(Key(Array(repeating: 1, count: 8)), v("at the limit"))
            await #expect(throws: DatabaseError.keyTooLarge(size: 9, limit: 8)) {
                try await db.put(Key(Array(repeating: 1, count: 9)), v("x"))
            }
            await #expect(throws: DatabaseError.keyTooLarge(size: 12, limit: 8)) {
                try await db.delete(Key(Array(repeating: 2, count: 12)))
            }
            #expect(db.stats.keys == 1)
        }
    }

    @Test func valueOverTheConfiguredLimitIsRefusedWithItsSizeAndTheLimit() async throws {
        var options = DatabaseOptions.forTests
        options.limits.maxValueSize = 10
        try await withNewDatabase(options: options) { db, _ in
            try await db.put("ok", Array(repeating: 7, count: 10))
            await #expect(throws: DatabaseError.valueTooLarge(size: 11, limit: 10)) {
                try await db.put("big", Array(repeating: 7, count: 11))
            }
            var batch = WriteBatch()
            batch.put("small", v("1"))
            batch.put("big", Array(repeating: 7, count: 100))
            await #expect(throws: DatabaseError.valueTooLarge(size: 100, limit: 10)) { try await db.write(batch) }
        }
    }

    @Test func batchOverTheConfiguredLimitIsRefusedWithItsEncodedSize() async throws {
        var options = DatabaseOptions.forTests
        options.limits.maxBatchSize = 100
        try await withNewDatabase(options: options) { db, _ in
            var batch = WriteBatch()
            var mutations: [WALMutation] = []
            for index in 0..<3 {
                batch.put(Key("k\(index)"), Array(repeating: 0, count: 30))
                mutations.append(.set(key: v("k\(index)"), value: Array(repeating: 0, count: 30)))
            }
            let payload = WALEncoder.payloadSize(of: mutations)
            #expect(payload > 100)
            await #expect(throws: DatabaseError.batchTooLarge(size: payload, limit: 100)) { try await db.write(batch) }
            // A single put is limited by the same rule: its record's payload.
            let single = WALEncoder.payloadSize(of: [.set(key: v("one"), value: Array(repeating: 0, count: 95))])
            await #expect(throws: DatabaseError.batchTooLarge(size: single, limit: 100)) {
                try await db.put("one", Array(repeating: 0, count: 95))
            }
        }
    }

    @Test func refusedWritesWriteNothing() async throws {
        var options = DatabaseOptions.forTests
        options.limits.maxKeySize = 8
        options.limits.maxValueSize = 16
        options.limits.maxBatchSize = 64
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: options)
            try await db.put("k", v("v"))
            let before = db.stats
            let logBefore = try TS.readFile(directory + "/logfile.0")

            await #expect(throws: DatabaseError.self) { try await db.put("", v("1")) }
            await #expect(throws: DatabaseError.self) { try await db.put("too-long-key", v("1")) }
            await #expect(throws: DatabaseError.self) { try await db.put("k", Array(repeating: 1, count: 17)) }
            var batch = WriteBatch()
            batch.put("valid", v("1"))
            batch.delete("k")
            batch.put("valid2", Array(repeating: 1, count: 17))
            await #expect(throws: DatabaseError.self) { try await db.write(batch) }
            var tooBig = WriteBatch()
            for index in 0..<5 { tooBig.put(Key("b\(index)"), Array(repeating: 1, count: 10)) }
            await #expect(throws: DatabaseError.self) { try await db.write(tooBig) }

            let after = db.stats
            #expect(after.walBytes == before.walBytes)
            #expect(after.logPosition == before.logPosition)
            #expect(after.syncs == before.syncs)
            #expect(after.writes == before.writes)
            #expect(after.puts == before.puts)
            #expect(after.deletes == before.deletes)
            #expect(try db.get("valid") == nil)
            #expect(try db.get("k") == v("v"))
            #expect(try TS.readFile(directory + "/logfile.0") == logBefore)
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.recordsReplayed == 1)
        }
    }

    @Test func defaultLimitsAreFourKiBKeysSixteenMiBValuesAndTheWALPayloadLimit() async throws {
        let limits = DatabaseOptions().limits
        #expect(limits.maxKeySize == 4096)
        #expect(limits.maxValueSize == 16 * 1024 * 1024)
        #expect(limits.maxBatchSize == 64 * 1024 * 1024)
        #expect(limits.maxBatchSize == WALFormat.maxPayloadSize)
        try await withNewDatabase { db, _ in
            try await db.put(Key(Array(repeating: 0x4B, count: 4096)), v("longest key"))
            await #expect(throws: DatabaseError.keyTooLarge(size: 4097, limit: 4096)) {
                try await db.put(Key(Array(repeating: 0x4B, count: 4097)), v("x"))
            }
            let largest = [UInt8](repeating: 0x56, count: 16 << 20)
            try await db.put("largest value", largest)
            #expect(try db.get("largest value") == largest)
            await #expect(throws: DatabaseError.valueTooLarge(size: (16 << 20) + 1, limit: 16 << 20)) {
                try await db.put("too large", largest + [0])
            }
            // Five 15 MiB values (shared storage, so cheap to build) pass the value limit but not the batch limit.
            let big = [UInt8](repeating: 1, count: 15 << 20)
            var batch = WriteBatch()
            for index in 0..<5 { batch.put(Key("big\(index)"), big) }
            let payload = 5 + 5 * (9 + 4 + (15 << 20))
            await #expect(throws: DatabaseError.batchTooLarge(size: payload, limit: 64 << 20)) { try await db.write(batch) }
        }
    }

    // MARK: Group commit

    @Test func concurrentWritersShareSyncs() async throws {
        let tasks = 64
        let putsPerTask = 20
        try await withNewDatabase { db, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for index in 0..<putsPerTask {
                            try await db.put(Key("t\(task)-\(index)"), v("value \(task) \(index)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stats = db.stats
            let writes = tasks * putsPerTask
            #expect(stats.writes == writes)
            #expect(stats.puts == writes)
            #expect(stats.syncs >= 1)
            #expect(stats.syncs < writes, "every write had its own sync: no group commit")
            #expect(stats.keys == writes)
            for task in 0..<tasks {
                for index in 0..<putsPerTask {
                    #expect(try db.get(Key("t\(task)-\(index)")) == v("value \(task) \(index)"))
                }
            }
        }
    }
}
