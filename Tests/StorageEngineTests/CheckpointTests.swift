import Foundation
import Platform
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Options with every background trigger off except those a test sets.
private func quietOptions() -> DatabaseOptions {
    var options = DatabaseOptions.forTests
    options.checkpoints.interval = .seconds(3600)
    options.checkpoints.logBytes = Int.max
    options.checkpoints.updates = 0
    return options
}

@Suite("Checkpoints over the real FileStore", .opensDataDirectories)
struct CheckpointTests {
    // MARK: Background triggers

    @Test func updatesTriggerStartsABackgroundCheckpoint() async throws {
        var options = quietOptions()
        options.checkpoints.updates = 50
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: options)
            for index in 0..<200 { try await db.put(Key("k\(index)"), v("value-\(index)")) }
            let happened = try await TS.eventually { db.stats.checkpoints > 0 }
            #expect(happened, "no background checkpoint after 200 updates with the trigger at 50")
            #expect(db.stats.generation >= 1)
            #expect(db.stats.failedCheckpoints == 0)
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration != nil)
            #expect(reopened.stats.keys == 200)
            #expect(try reopened.get("k199") == v("value-199"))
            #expect(try reopened.get("k0") == v("value-0"))
        }
    }

    @Test func logBytesTriggerStartsABackgroundCheckpoint() async throws {
        var options = quietOptions()
        options.checkpoints.logBytes = 4096
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: options)
            let value = [UInt8](repeating: 0x42, count: 100)
            for index in 0..<60 { try await db.put(Key("k\(index)"), value) }  // about 7 KB of log
            let happened = try await TS.eventually { db.stats.checkpoints > 0 }
            #expect(happened, "no background checkpoint after the log passed 4096 bytes")
            #expect(db.stats.generation >= 1)
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.stats.keys == 60)
            #expect(try reopened.get("k59") == value)
        }
    }

    @Test func intervalTriggerStartsABackgroundCheckpointWithoutFurtherWrites() async throws {
        var options = quietOptions()
        options.checkpoints.interval = .milliseconds(10)
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: options)
            defer { db.close() }
            try await db.put("k", v("1"))
            // The interval timer ticks once a second: a checkpoint must come with no other write.
            let happened = try await TS.eventually(timeout: .seconds(10)) { db.stats.checkpoints > 0 }
            #expect(happened, "no background checkpoint from the interval trigger")
        }
    }

    @Test func disabledBackgroundCheckpointsNeverRun() async throws {
        var options = DatabaseOptions.forTests
        options.checkpoints.enabled = false
        options.checkpoints.updates = 1
        options.checkpoints.logBytes = 1
        options.checkpoints.interval = .zero
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: options)
            for index in 0..<100 { try await db.put(Key("k\(index)"), v("value-\(index)")) }
            // Every trigger has fired 99 times over by now (each round checks them before the next
            // round can complete); close waits for any checkpoint they queued.
            db.close()
            #expect(db.stats.checkpoints == 0)
            #expect(db.stats.generation == 0)
            #expect(try TS.listing(directory) == ["version", "logfile.0"])
            #expect(try TS.marker(directory, "version") == "0\n")
        }
    }

    // MARK: Checkpoints and concurrent writes

    @Test func writesDuringACheckpointAreNotLost() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            let big = [UInt8](repeating: 0x33, count: 512)
            for start in stride(from: 0, to: 2000, by: 100) {
                var batch = WriteBatch()
                for index in start..<(start + 100) { batch.put(Key("initial-\(index)"), big) }
                try await db.write(batch)
            }
            let result = try await withThrowingTaskGroup(of: CheckpointResult?.self) { group in
                group.addTask { try await db.checkpoint() }
                for writer in 0..<8 {
                    group.addTask {
                        for index in 0..<25 {
                            try await db.put(Key("during-\(writer)-\(index)"), v("\(writer)/\(index)"))
                            try await db.put(Key("initial-\(writer * 25 + index)"), v("overwritten"))
                        }
                        try await db.delete(Key("initial-\(1000 + writer)"))
                        return nil
                    }
                }
                var checkpoint: CheckpointResult?
                for try await outcome in group { if let outcome { checkpoint = outcome } }
                return checkpoint
            }
            #expect(result?.generation == 1)
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration == 1)
            #expect(reopened.stats.keys == 2000 - 8 + 200)
            for writer in 0..<8 {
                for index in 0..<25 {
                    #expect(try reopened.get(Key("during-\(writer)-\(index)")) == v("\(writer)/\(index)"))
                    #expect(try reopened.get(Key("initial-\(writer * 25 + index)")) == v("overwritten"))
                }
                #expect(try reopened.get(Key("initial-\(1000 + writer)")) == nil)
            }
            #expect(try reopened.get("initial-1999") == big)
        }
    }

    @Test func checkpointsRunOneAtATimeAndEachTakesTheNextGeneration() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            defer { db.close() }
            try await db.put("k", v("1"))
            let generations = try await withThrowingTaskGroup(of: UInt64.self) { group in
                for _ in 0..<3 { group.addTask { try await db.checkpoint().generation } }
                var generations: [UInt64] = []
                for try await generation in group { generations.append(generation) }
                return generations.sorted()
            }
            #expect(generations == [1, 2, 3])
            #expect(db.stats.generation == 3)
            #expect(db.stats.checkpoints == 3)
            #expect(try TS.listing(directory) == ["version", "checkpoint.3", "logfile.3"])
        }
    }

    @Test func closeFinishesACheckpointAlreadyStarted() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            for index in 0..<500 { try await db.put(Key("k\(index)"), [UInt8](repeating: 1, count: 100)) }
            let outcome = Lock<Result<CheckpointResult, DatabaseError>?>(nil)
            db.checkpoint { result in outcome.withLock { $0 = result } }
            db.close()
            let result = try #require(outcome.withLock { $0 }, "close returned before the checkpoint finished")
            #expect(try result.get().generation == 1)
            #expect(try TS.listing(directory) == ["version", "checkpoint.1", "logfile.1"])

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration == 1)
            #expect(reopened.stats.keys == 500)
        }
    }

    /// close() stops the checkpointer before the committer, so a background checkpoint that the
    /// last commit round triggers never runs after close() has returned.
    @Test func noBackgroundCheckpointRunsAfterCloseReturns() async throws {
        var options = quietOptions()
        options.checkpoints.updates = 1
        try await TS.withTemporaryDirectory { directory in
            for _ in 0..<20 {
                let db = try Database.open(directory: directory, create: true, options: options)
                try await db.put("k", v("1"))  // fires the updates trigger
                db.close()
                let atClose = (db.stats.checkpoints, db.stats.failedCheckpoints, try TS.listing(directory))
                // Nothing may change once close() has returned; watch for a bounded while.
                let changed = try await TS.eventually(timeout: .milliseconds(100)) {
                    let files = try TS.listing(directory)
                    return (db.stats.checkpoints, db.stats.failedCheckpoints) != (atClose.0, atClose.1) || files != atClose.2
                }
                #expect(!changed, "checkpoint activity after close(): \(atClose.0)/\(atClose.1) -> \(db.stats.checkpoints)/\(db.stats.failedCheckpoints)")
                if changed { break }
            }
        }
    }

    // MARK: What a checkpoint leaves on disk

    @Test func checkpointFileHoldsExactlyTheStateInFormatVersion3() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            defer { db.close() }
            var expected: [[UInt8]: [UInt8]] = [:]
            for index in 0..<30 {
                let key = [UInt8(index), 0x00, 0xFF]
                let value = index % 3 == 0 ? [] : Array(repeating: UInt8(index), count: index)
                try await db.put(Key(key), value)
                expected[key] = value
            }
            for index in stride(from: 1, to: 30, by: 4) {
                try await db.delete(Key([UInt8(index), 0x00, 0xFF]))
                expected[[UInt8(index), 0x00, 0xFF]] = nil
            }
            let (contents, header) = try await TS.dumpThroughCheckpoint(db, directory: directory)
            #expect(header.version == 3)
            #expect(header.generation == 1)
            #expect(header.entryCount == UInt64(expected.count))
            #expect(header.revision == 38, "30 puts and 8 deletes")
            #expect(contents == expected)
            // Version 3 lists the keys ascending, each with its revisions.
            let bytes = try TS.readFile(directory + "/checkpoint.1")
            var listed: [([UInt8], CheckpointRevisions)] = []
            try bytes.withUnsafeBytes { raw in
                try CheckpointReader.forEachEntryWithRevisions(of: raw, header: header) { key, _, revisions in
                    listed.append((Array(key), revisions))
                }
            }
            #expect(listed.map(\.0) == expected.keys.sorted { $0.lexicographicallyPrecedes($1) })
            for (key, revisions) in listed {
                let entry = try db.entry(Key(key))
                #expect(revisions == CheckpointRevisions(create: entry!.createRevision, mod: entry!.modRevision))
            }
        }
    }

    @Test func checkpointRemovesTheOldGenerationsFiles() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            defer { db.close() }
            try await db.put("a", v("1"))
            _ = try await db.checkpoint()
            #expect(try TS.listing(directory) == ["version", "checkpoint.1", "logfile.1"])
            try await db.put("b", v("2"))
            _ = try await db.checkpoint()
            #expect(try TS.listing(directory) == ["version", "checkpoint.2", "logfile.2"])
            #expect(try TS.marker(directory, "version") == "2\n")
            #expect(try TS.fileSize(directory + "/logfile.2") == 0)
        }
    }

    @Test func checkpointOfAnEmptyDatabaseReopensEmpty() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            let result = try await db.checkpoint()
            #expect(result.keys == 0)
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration == 1)
            #expect(reopened.recovery.checkpointEntries == 0)
            #expect(reopened.stats.keys == 0)
        }
    }

    // MARK: Reopening after a checkpoint

    @Test func reopenLoadsTheCheckpointAndReplaysOnlyTheNewSegment() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            for index in 0..<10 { try await db.put(Key("k\(index)"), v("v\(index)")) }
            _ = try await db.checkpoint()
            try await db.put("k10", v("v10"))
            try await db.put("k0", v("changed"))
            try await db.delete("k1")
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration == 1)
            #expect(reopened.recovery.checkpointEntries == 10)
            #expect(reopened.recovery.segmentsReplayed == [1])
            #expect(reopened.recovery.recordsReplayed == 3)
            #expect(reopened.stats.generation == 1)
            #expect(reopened.stats.keys == 10)
            #expect(try reopened.get("k0") == v("changed"))
            #expect(try reopened.get("k1") == nil)
            #expect(try reopened.get("k10") == v("v10"))
            #expect(try reopened.get("k9") == v("v9"))
        }
    }
}
