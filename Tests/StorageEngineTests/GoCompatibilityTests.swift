import Foundation
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

/// Opening data directories written by the reference Go small-db (Fixtures/go-small-db). Every test
/// opens a copy in its own temporary directory, never the fixture itself.
@Suite("Go-written data directories", .opensDataDirectories)
struct GoCompatibilityTests {
    /// Copies fixture `name` into a fresh temporary directory and runs `body` with its path.
    private func withFixture<R>(_ name: String, _ body: (String) async throws -> R) async throws -> R {
        try await TS.withTemporaryDirectory { directory in
            try TS.copyFixture(name, to: directory)
            return try await body(directory)
        }
    }

    // MARK: basic

    @Test func basicOpensToExactlyTheExpectedContents() async throws {
        let expected = try TS.expectedContents("basic")
        #expect(expected.count == 323)
        try await withFixture("basic") { directory in
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try TS.expectContents(of: db, equal: expected)
            #expect(db.stats.generation == 2)
            #expect(db.recovery.checkpointGeneration == 2)
            #expect(db.recovery.checkpointEntries == 266)
            #expect(db.recovery.segmentsReplayed == [2])
            #expect(db.recovery.recordsReplayed == 180)
            #expect(db.recovery.tornTail == nil)
            #expect(db.recovery.truncatedCorruption == nil)
            #expect(db.recovery.finishedSwitch == nil)
            #expect(db.recovery.discardedSwitch == nil)
        }
    }

    @Test func basicOpenRewritesNoFile() async throws {
        try await withFixture("basic") { directory in
            let before = try TS.snapshot(directory)
            let db = try Database.open(directory: directory, options: .forTests)
            db.close()
            #expect(try TS.snapshot(directory) == before)
        }
    }

    @Test func basicEnumeratedThroughOurCheckpointIsExactlyTheExpectedContents() async throws {
        let expected = try TS.expectedContents("basic")
        try await withFixture("basic") { directory in
            let db = try Database.open(directory: directory, options: .forTests)
            let (contents, header) = try await TS.dumpThroughCheckpoint(db, directory: directory)
            #expect(header.version == CheckpointFormat.currentVersion)
            #expect(header.generation == 3)
            #expect(contents == expected)
            db.close()
            #expect(try TS.listing(directory) == ["version", "checkpoint.3", "logfile.3"])

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.checkpointGeneration == 3)
            try TS.expectContents(of: reopened, equal: expected)
        }
    }

    @Test func writesAppendedToAGoLogSurviveReopening() async throws {
        var expected = try TS.expectedContents("basic")
        try await withFixture("basic") { directory in
            let goLogSize = try TS.fileSize(directory + "/logfile.2")
            let db = try Database.open(directory: directory, options: .forTests)
            #expect(db.stats.logPosition == LogPosition(generation: 2, offset: goLogSize))
            try await db.put(Key([0x00, 0xFF, 0x80]), [0xDE, 0xAD])
            let firstKey = try #require(expected.keys.sorted { $0.lexicographicallyPrecedes($1) }.first)
            try await db.delete(Key(firstKey))
            db.close()
            expected[[0x00, 0xFF, 0x80]] = [0xDE, 0xAD]
            expected[firstKey] = nil

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.recordsReplayed == 182)
            try TS.expectContents(of: reopened, equal: expected)
        }
    }

    // MARK: torn-tail

    @Test func tornTailOpensToTheExpectedContentsAndCutsThe37Bytes() async throws {
        let expected = try TS.expectedContents("torn-tail")
        try await withFixture("torn-tail") { directory in
            let path = directory + "/logfile.2"
            let tornSize = try TS.fileSize(path)
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try TS.expectContents(of: db, equal: expected)
            let torn = try #require(db.recovery.tornTail)
            #expect(torn.file == path)
            #expect(torn.droppedBytes == 37)
            #expect(torn.offset == tornSize - 37)
            #expect(try TS.fileSize(path) == tornSize - 37)
            // What is left is exactly the basic fixture's log.
            #expect(try TS.readFile(path) == TS.readFile(TS.fixturesDirectory + "/basic/logfile.2"))
            #expect(db.stats.logPosition == LogPosition(generation: 2, offset: tornSize - 37))
        }
    }

    // MARK: pending-switch

    @Test func pendingSwitchIsFinishedToGeneration3WithTheExpectedContents() async throws {
        let expected = try TS.expectedContents("pending-switch")
        try await withFixture("pending-switch") { directory in
            #expect(try TS.listing(directory)
                == ["version", "newVersion", "checkpoint.2", "logfile.2", "checkpoint.3", "logfile.3"])
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try TS.expectContents(of: db, equal: expected)
            #expect(db.recovery.finishedSwitch == 3)
            #expect(db.stats.generation == 3)
            #expect(db.recovery.checkpointGeneration == 3)
            #expect(db.recovery.segmentsReplayed == [3])
            #expect(try TS.listing(directory) == ["version", "checkpoint.3", "logfile.3"])
            #expect(try TS.marker(directory, "version") == "3\n")
        }
    }

    // MARK: corrupt-wal-middle

    @Test func corruptWALMiddleRefusesToOpenNamingLogfile2AtOffset3636() async throws {
        try await withFixture("corrupt-wal-middle") { directory in
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptLog(let file, let offset, _) = error else {
                Issue.record("expected corruptLog, got \(String(describing: error))")
                return
            }
            #expect(file.hasSuffix("logfile.2"))
            #expect(file == directory + "/logfile.2")
            #expect(offset == 3636)
            #expect(try TS.snapshot(directory) == before, "the failed open changed the directory")
        }
    }

    @Test func corruptWALMiddleWithTruncationAllowedOpensToTheTruncatedContents() async throws {
        let expected = try TS.expectedContents("corrupt-wal-middle.truncated")
        try await withFixture("corrupt-wal-middle") { directory in
            let path = directory + "/logfile.2"
            let size = try TS.fileSize(path)
            var options = DatabaseOptions.forTests
            options.corruptLog = .truncate
            let db = try Database.open(directory: directory, options: options)
            defer { db.close() }
            try TS.expectContents(of: db, equal: expected)
            let cut = try #require(db.recovery.truncatedCorruption)
            #expect(cut.file == path)
            #expect(cut.offset == 3636)
            #expect(cut.droppedBytes == size - 3636)
            #expect(db.recovery.tornTail == nil)
            #expect(try TS.fileSize(path) == 3636)
        }
    }

    @Test func corruptWALMiddleOpensWithTruncationAfterARefusedOpen() async throws {
        let expected = try TS.expectedContents("corrupt-wal-middle.truncated")
        try await withFixture("corrupt-wal-middle") { directory in
            #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            var options = DatabaseOptions.forTests
            options.corruptLog = .truncate
            let db = try Database.open(directory: directory, options: options)  // the failed open released the lock
            defer { db.close() }
            try TS.expectContents(of: db, equal: expected)
        }
    }
}
