import Foundation
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Recovery deletes nothing until the generation it will load is proven whole, and refuses (naming
/// the files, deleting nothing) any state that contradicts `version` or `newVersion`, which carry
/// no checksum (Recovery.swift, the rule and its steps).
@Suite("Recovery deletes nothing it has not replaced", .opensDataDirectories)
struct RecoveryDeletesNothingTests {
    /// Three checkpoints through the engine: checkpoint.3, logfile.3, version = 3, and `count` keys.
    private func writeThreeGenerations(_ directory: String, keys count: Int = 20) async throws {
        let db = try Database.open(directory: directory, create: true, options: .forTests)
        defer { db.close() }
        for round in 0..<3 {
            for index in 0..<count { try await db.put(Key("k\(index)"), v("value-\(index)-\(round)")) }
            _ = try await db.checkpoint()
        }
        try await db.put("after", v("the last checkpoint"))
    }

    /// The issue's case: one flipped bit in `version` (3 → 2, 1, 7 or 11). Before the fix, opening
    /// deleted checkpoint.3 and then refused: every key was gone for good.
    @Test(arguments: [UInt64(2), 1, 7, 11])
    func flippedBitInVersionRefusesToOpenAndDeletesNothing(flipped: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            try await writeThreeGenerations(directory)
            #expect(try TS.listing(directory) == ["version", "checkpoint.3", "logfile.3"])
            try TS.writeMarker(directory, "version", flipped)
            let before = try TS.snapshot(directory)

            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .inconsistentDirectory(let why) = error else {
                Issue.record("expected inconsistentDirectory, got \(String(describing: error))")
                return
            }
            #expect(why.contains("logfile.\(flipped)"), "\(why)")
            #expect(why.contains("checkpoint.3, logfile.3"), "names the files it holds: \(why)")
            #expect(why.contains("Nothing was deleted") && why.contains("Check `version`"), "\(why)")
            #expect(try TS.snapshot(directory) == before, "the failed open changed the directory")

            // Repairing `version` brings everything back.
            try TS.writeMarker(directory, "version", 3)
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(db.stats.keys == 21)
            #expect(try db.get("k7") == v("value-7-2"))
            #expect(try db.get("after") == v("the last checkpoint"))
        }
    }

    /// The same over the simulated disk: the refused open performs no directory operation at all.
    @Test func flippedBitInVersionDeletesNothingOnTheSimulatedDisk() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        for round in 0..<3 {
            try await db.put("k", v("round \(round)"))
            _ = try await db.checkpoint()
        }
        db.close()
        store.createFile("version", contents: v("2\n"))
        let files = store.fileNames()
        let contents = files.map { store.contents(of: $0) }
        let directoryOperations = store.operationCount(.directory)

        #expect(throws: DatabaseError.self) { try Database.open(logStore: store, snapshotStore: store, options: .forTests) }
        #expect(store.fileNames() == files)
        #expect(files.map { store.contents(of: $0) } == contents)
        #expect(store.operationCount(.directory) == directoryOperations, "the refused open changed the directory")

        store.createFile("version", contents: v("3\n"))
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.get("k") == v("round 2"))
    }

    @Test func checkpointNewerThanAnyTheLogCanHaveStartedIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("k"), v("1"))])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("k", "log")]])
            try TS.writeCheckpoint(directory, generation: 5, entries: [(v("k"), v("5"))])
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .inconsistentDirectory(let why) = error else {
                Issue.record("expected inconsistentDirectory, got \(String(describing: error))")
                return
            }
            #expect(why.contains("checkpoint.5"), "\(why)")
            #expect(try TS.snapshot(directory) == before)
        }
    }

    /// A `newVersion` at or below `version` was never written by a switch: before the fix, opening
    /// "finished" a switch back to generation 2 and deleted generation 3.
    @Test func newVersionNotAboveVersionIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 3)
            try TS.writeCheckpoint(directory, generation: 3, entries: [(v("k"), v("3"))])
            try TS.writeLog(directory, generation: 3, records: [[TS.set("k", "log3")]])
            try TS.writeCheckpoint(directory, generation: 2, entries: [(v("k"), v("2"))])
            try TS.writeLog(directory, generation: 2, records: [])
            try TS.writeMarker(directory, "newVersion", 2)
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .inconsistentDirectory(let why) = error else {
                Issue.record("expected inconsistentDirectory, got \(String(describing: error))")
                return
            }
            #expect(why.contains("newVersion names generation 2 but version names 3"), "\(why)")
            #expect(try TS.snapshot(directory) == before)
        }
    }

    /// checkpoint.N's own generation field disagrees with its name: refused before anything else
    /// (here an uncommitted checkpoint.2 and a temporary, which a successful open would delete).
    @Test func checkpointWhoseHeaderDisagreesDeletesNothing() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 5, entries: [(v("k"), v("v"))])
            try FileManager.default.moveItem(atPath: directory + "/checkpoint.5", toPath: directory + "/checkpoint.1")
            try TS.writeLog(directory, generation: 1, records: [[TS.set("k", "1")]])
            try TS.writeLog(directory, generation: 2, records: [])
            try TS.writeCheckpoint(directory, generation: 2, entries: [(v("k"), v("v"))])
            try TS.writeFile(directory + "/checkpoint.3.tmp", [1, 2, 3])
            let before = try TS.snapshot(directory)
            #expect(throws: DatabaseError.corruptCheckpoint(
                file: directory + "/checkpoint.1",
                reason: CheckpointError.generationMismatch(expected: 1, found: 5).description)
            ) {
                try Database.open(directory: directory, options: .forTests)
            }
            #expect(try TS.snapshot(directory) == before)
        }
    }

    /// A committed switch whose checkpoint is damaged falls back to the old generation only once
    /// that one is proven whole: here its checkpoint is damaged too, so the open is refused and
    /// `newVersion` (which the old code deleted first) is still there.
    @Test func fallbackToADamagedOldGenerationRefusesAndDeletesNothing() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("a"), v("1")), (v("b"), v("1"))])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("a", "log1")]])
            try TS.writeLog(directory, generation: 2, records: [[TS.set("b", "log2")]])
            try TS.writeCheckpoint(directory, generation: 2, entries: [(v("a"), v("log1")), (v("b"), v("1"))])
            try TS.writeMarker(directory, "newVersion", 2)
            for generation in [1, 2] {
                let path = directory + "/checkpoint.\(generation)"
                try TS.flipByte(path, at: try TS.fileSize(path) - 6)
            }
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptCheckpoint = error else {
                Issue.record("expected corruptCheckpoint, got \(String(describing: error))")
                return
            }
            #expect(try TS.snapshot(directory) == before, "the failed open changed the directory")
        }
    }

    /// A segment whose size changed between replay and the open for appending was a `precondition`
    /// (a crash of the whole process); it is a typed error now, and the writer is not kept.
    @Test func segmentThatChangesSizeDuringTheOpenIsATypedError() throws {
        let store = FaultInjectingStore()
        try Database.open(logStore: store, snapshotStore: store, options: .forTests).close()
        let lying = SizeLyingStore(store)
        let error = #expect(throws: DatabaseError.self) { try Database.open(logStore: lying, snapshotStore: store, options: .forTests) }
        guard case .inconsistentDirectory(let why) = error else {
            Issue.record("expected inconsistentDirectory, got \(String(describing: error))")
            return
        }
        #expect(why.contains("logfile.0 is 7 bytes, but recovery left it at 0"), "\(why)")
    }
}

/// A `LogStore` whose segments opened for appending claim 7 more bytes than they hold, as if
/// something else had written into the file during the open. Everything else goes to `base`.
private final class SizeLyingStore: LogStore {
    let base: FaultInjectingStore
    init(_ base: FaultInjectingStore) { self.base = base }

    private final class Writer: LogSegmentWriter {
        let inner: any LogSegmentWriter
        init(_ inner: any LogSegmentWriter) { self.inner = inner }
        var generation: UInt64 { inner.generation }
        var size: Int { inner.size + 7 }
        func append(_ bytes: UnsafeRawBufferPointer) throws(DatabaseError) { try inner.append(bytes) }
        func sync() throws(DatabaseError) { try inner.sync() }
        func close() { inner.close() }
    }

    func logGenerations() throws(DatabaseError) -> [UInt64] { try base.logGenerations() }
    func readLog(_ generation: UInt64) throws(DatabaseError) -> [UInt8] { try base.readLog(generation) }
    func truncateLog(_ generation: UInt64, to length: Int) throws(DatabaseError) { try base.truncateLog(generation, to: length) }
    func createLog(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter { try base.createLog(generation) }
    func openLogForAppend(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter {
        Writer(try base.openLogForAppend(generation))
    }
    func removeLog(_ generation: UInt64) throws(DatabaseError) { try base.removeLog(generation) }
}
