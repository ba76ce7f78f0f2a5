import Foundation
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Version 1 with its checkpoint, logfile.1 (a=1, b=2, c=3), logfile.2 (d=4) and logfile.3
/// (e=5), and b's record in logfile.1 damaged (a flipped key byte): returns where that record
/// starts.
private func writeSegmentsWithDamageInTheFirst(_ directory: String) throws -> Int {
    try TS.writeMarker(directory, "version", 1)
    try TS.writeCheckpoint(directory, generation: 1, entries: [(v("cp"), v("1"))])
    let first = try TS.writeLog(directory, generation: 1, records: [[TS.set("a", "1")], [TS.set("b", "2")], [TS.set("c", "3")]])
    try TS.writeLog(directory, generation: 2, records: [[TS.set("d", "4")]])
    try TS.writeLog(directory, generation: 3, records: [[TS.set("e", "5")]])
    try TS.flipByte(directory + "/logfile.1", at: first.starts[1] + 13)
    return first.starts[1]
}

/// A version switch from generation N to G = N + 1, as files on disk (Checkpointer.swift steps 1–5).
///
/// - checkpoint.N: a=cp-a, b=cp-b, c=cp-c (for N = 0 there is no checkpoint.0: those three sets
///   open logfile.0 instead, as they would in a fresh directory)
/// - logfile.N: set b=log1-b, delete c, set d=log1-d
/// - the snapshot taken at step 1 (what checkpoint.G holds): a=cp-a, b=log1-b, d=log1-d
/// - logfile.G (written after step 1): batch{set e=log2-e, set a=log2-a}, delete b
/// - so every acknowledged write together: a=log2-a, d=log1-d, e=log2-e
private struct SwitchScenario {
    let directory: String
    let n: UInt64
    var g: UInt64 { n + 1 }

    static let finalContents: [String: String] = ["a": "log2-a", "d": "log1-d", "e": "log2-e"]
    static let snapshotContents: [String: String] = ["a": "cp-a", "b": "log1-b", "d": "log1-d"]

    var oldLogRecords: [[WALMutation]] {
        let base: [[WALMutation]] = n == 0 ? [[TS.set("a", "cp-a")], [TS.set("b", "cp-b")], [TS.set("c", "cp-c")]] : []
        return base + [[TS.set("b", "log1-b")], [TS.delete("c")], [TS.set("d", "log1-d")]]
    }
    let newLogRecords: [[WALMutation]] = [[TS.set("e", "log2-e"), TS.set("a", "log2-a")], [TS.delete("b")]]

    /// The files of generation N: version, checkpoint.N (N > 0), logfile.N.
    var oldGenerationFiles: Set<String> {
        var files: Set<String> = ["version", "logfile.\(n)"]
        if n > 0 { files.insert("checkpoint.\(n)") }
        return files
    }

    func writeVersion() throws { try TS.writeMarker(directory, "version", n) }

    func writeOldCheckpoint() throws {
        guard n > 0 else { return }
        try TS.writeCheckpoint(directory, generation: n, entries: [(v("a"), v("cp-a")), (v("b"), v("cp-b")), (v("c"), v("cp-c"))])
    }

    func writeOldLog() throws { try TS.writeLog(directory, generation: n, records: oldLogRecords) }

    /// Step 1: logfile.G created and written to after the rotation.
    @discardableResult
    func writeNewLog() throws -> Int { try TS.writeLog(directory, generation: g, records: newLogRecords).end }

    /// Step 2: checkpoint.G from the snapshot.
    func writeNewCheckpoint() throws {
        let entries = SwitchScenario.snapshotContents.sorted { $0.key < $1.key }.map { (v($0.key), v($0.value)) }
        try TS.writeCheckpoint(directory, generation: g, entries: entries)
    }

    /// Step 3: the commit point.
    func writeNewVersion() throws { try TS.writeMarker(directory, "newVersion", g) }

    /// Everything up to the end of step 1: generation N intact plus logfile.G.
    @discardableResult
    func writeThroughStep1() throws -> Int {
        try writeVersion()
        try writeOldCheckpoint()
        try writeOldLog()
        return try writeNewLog()
    }

    static func expect(_ db: Database, holds contents: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for (key, value) in contents {
            #expect(try db.get(Key(key)) == v(value), "key \(key)", sourceLocation: sourceLocation)
        }
        #expect(db.stats.keys == contents.count, "key count", sourceLocation: sourceLocation)
    }

    /// The recovered database kept generation N and replayed logfile.N and logfile.G.
    func expectOldGenerationRecovered(_ db: Database, newLogSize: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try SwitchScenario.expect(db, holds: SwitchScenario.finalContents, sourceLocation: sourceLocation)
        #expect(db.stats.generation == n, sourceLocation: sourceLocation)
        #expect(db.recovery.segmentsReplayed == [n, g], sourceLocation: sourceLocation)
        #expect(db.recovery.recordsReplayed == oldLogRecords.count + newLogRecords.count, sourceLocation: sourceLocation)
        #expect(db.recovery.checkpointGeneration == (n > 0 ? n : nil), sourceLocation: sourceLocation)
        #expect(db.recovery.checkpointEntries == (n > 0 ? 3 : 0), sourceLocation: sourceLocation)
        #expect(db.recovery.finishedSwitch == nil, sourceLocation: sourceLocation)
        #expect(db.stats.logPosition == LogPosition(generation: g, offset: newLogSize), sourceLocation: sourceLocation)
        let oldLogSize = try TS.fileSize(directory + "/logfile.\(n)")
        #expect(db.stats.walBytes == oldLogSize + newLogSize, "walBytes counts both live segments", sourceLocation: sourceLocation)
        #expect(try TS.listing(directory) == oldGenerationFiles.union(["logfile.\(g)"]), sourceLocation: sourceLocation)
        #expect(try TS.marker(directory, "version") == "\(n)\n", sourceLocation: sourceLocation)
    }

    /// The recovered database finished the switch: generation G only.
    func expectSwitchFinished(_ db: Database, newLogSize: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try SwitchScenario.expect(db, holds: SwitchScenario.finalContents, sourceLocation: sourceLocation)
        #expect(db.recovery.finishedSwitch == g, sourceLocation: sourceLocation)
        #expect(db.recovery.discardedSwitch == nil, sourceLocation: sourceLocation)
        #expect(db.stats.generation == g, sourceLocation: sourceLocation)
        #expect(db.recovery.checkpointGeneration == g, sourceLocation: sourceLocation)
        #expect(db.recovery.checkpointEntries == SwitchScenario.snapshotContents.count, sourceLocation: sourceLocation)
        #expect(db.recovery.segmentsReplayed == [g], sourceLocation: sourceLocation)
        #expect(db.recovery.recordsReplayed == newLogRecords.count, sourceLocation: sourceLocation)
        #expect(db.stats.logPosition == LogPosition(generation: g, offset: newLogSize), sourceLocation: sourceLocation)
        #expect(try TS.listing(directory) == ["version", "checkpoint.\(g)", "logfile.\(g)"], sourceLocation: sourceLocation)
        #expect(try TS.marker(directory, "version") == "\(g)\n", sourceLocation: sourceLocation)
    }
}

private let baseGenerations: [UInt64] = [0, 1, 7]

/// Opening `directory` fails with `.inconsistentDirectory`, whose text mentions `file` if given.
private func expectInconsistentDirectory(
    _ directory: String, mentioning file: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let error = #expect(throws: DatabaseError.self, sourceLocation: sourceLocation) {
        try Database.open(directory: directory, options: .forTests)
    }
    guard case .inconsistentDirectory(let why) = error else {
        Issue.record("expected inconsistentDirectory, got \(String(describing: error))", sourceLocation: sourceLocation)
        return
    }
    if let file { #expect(why.contains(file), "\(why)", sourceLocation: sourceLocation) }
}

@Suite("Recovery over the real FileStore", .opensDataDirectories)
struct RecoveryTests {
    // MARK: Each step of the version switch

    @Test("after step 1 (logfile.G started, nothing else): both segments replayed and kept", arguments: baseGenerations)
    func afterStep1BothSegmentsAreReplayedAndKept(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
            #expect(db.recovery.discardedSwitch == nil)
        }
    }

    @Test("after step 1: new writes go to logfile.G and the next checkpoint is G+1", arguments: baseGenerations)
    func afterStep1TheNextCheckpointSwitchesPastTheNewSegment(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            let db = try Database.open(directory: directory, options: .forTests)
            try await db.put("f", v("after-recovery"))
            #expect(db.stats.logPosition.generation == scenario.g)
            #expect(try TS.fileSize(directory + "/logfile.\(scenario.g)") > newLogSize)
            let result = try await db.checkpoint()
            #expect(result.generation == scenario.g + 1)
            #expect(result.keys == 4)
            #expect(try TS.listing(directory) == ["version", "checkpoint.\(scenario.g + 1)", "logfile.\(scenario.g + 1)"])
            db.close()

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            var expected = SwitchScenario.finalContents
            expected["f"] = "after-recovery"
            try SwitchScenario.expect(reopened, holds: expected)
            #expect(reopened.stats.generation == scenario.g + 1)
        }
    }

    @Test("during step 2: a leftover checkpoint.G.tmp is removed", arguments: baseGenerations)
    func leftoverCheckpointTemporaryIsRemoved(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try TS.writeFile(directory + "/checkpoint.\(scenario.g).tmp", Array(CheckpointFormat.magic) + [2, 0, 0])
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
            #expect(!TS.fileExists(directory + "/checkpoint.\(scenario.g).tmp"))
        }
    }

    @Test("after step 2: checkpoint.G without newVersion is removed, logfile.N and logfile.G replayed", arguments: baseGenerations)
    func uncommittedCheckpointIsRemovedAndBothLogsReplayed(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
            #expect(!TS.fileExists(directory + "/checkpoint.\(scenario.g)"))
        }
    }

    @Test("during step 3: a leftover newVersion.tmp is removed and the switch is not taken", arguments: baseGenerations)
    func leftoverNewVersionTemporaryIsRemoved(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try TS.writeMarker(directory, "newVersion.tmp", scenario.g)
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
            #expect(db.recovery.finishedSwitch == nil)
            #expect(db.recovery.discardedSwitch == nil)
        }
    }

    @Test func leftoverVersionTemporaryIsRemovedAndIgnored() async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: 1)
            let newLogSize = try scenario.writeThroughStep1()
            try TS.writeMarker(directory, "version.tmp", 2)
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
        }
    }

    @Test("after step 3 (the commit point): the switch is finished", arguments: baseGenerations)
    func committedSwitchIsFinished(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectSwitchFinished(db, newLogSize: newLogSize)
        }
    }

    @Test("during step 4, checkpoint.N already deleted: the switch is finished", arguments: baseGenerations)
    func committedSwitchWithTheOldCheckpointDeletedIsFinished(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            try? FileManager.default.removeItem(atPath: directory + "/checkpoint.\(n)")
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectSwitchFinished(db, newLogSize: newLogSize)
        }
    }

    @Test("during step 4, checkpoint.N, logfile.N and version deleted: the switch is finished", arguments: baseGenerations)
    func committedSwitchWithTheOldGenerationAndVersionDeletedIsFinished(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            for name in scenario.oldGenerationFiles { try FileManager.default.removeItem(atPath: directory + "/" + name) }
            #expect(try TS.listing(directory) == ["newVersion", "checkpoint.\(scenario.g)", "logfile.\(scenario.g)"])
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectSwitchFinished(db, newLogSize: newLogSize)
        }
    }

    @Test("newVersion without its checkpoint is discarded", arguments: baseGenerations)
    func newVersionWithoutItsCheckpointIsDiscarded(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewVersion()
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(db.recovery.discardedSwitch == scenario.g)
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
        }
    }

    @Test("newVersion without its log segment is discarded, and so is the checkpoint", arguments: baseGenerations)
    func newVersionWithoutItsLogIsDiscarded(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            try scenario.writeVersion()
            try scenario.writeOldCheckpoint()
            try scenario.writeOldLog()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(db.recovery.discardedSwitch == scenario.g)
            #expect(db.recovery.finishedSwitch == nil)
            try SwitchScenario.expect(db, holds: SwitchScenario.snapshotContents)
            #expect(db.stats.generation == n)
            #expect(db.recovery.segmentsReplayed == [n])
            #expect(try TS.listing(directory) == scenario.oldGenerationFiles)
        }
    }

    /// Recovery step 2 says "otherwise delete newVersion"; the Go version deletes an unreadable one too.
    @Test func unreadableNewVersionIsRemoved() async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: 1)
            let newLogSize = try scenario.writeThroughStep1()
            try TS.writeFile(directory + "/newVersion", v("not a number\n"))
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
        }
    }

    @Test func segmentsOfTwoSwitchesThatStoppedAfterStep1AreAllReplayed() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("a"), v("cp"))])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("b", "1")]])
            try TS.writeLog(directory, generation: 2, records: [[TS.set("c", "2")], [TS.delete("a")]])
            let last = try TS.writeLog(directory, generation: 3, records: [[TS.set("d", "3")]])
            let db = try Database.open(directory: directory, options: .forTests)
            #expect(db.recovery.segmentsReplayed == [1, 2, 3])
            #expect(db.recovery.recordsReplayed == 4)
            #expect(db.stats.generation == 1)
            #expect(db.stats.logPosition == LogPosition(generation: 3, offset: last.end))
            try SwitchScenario.expect(db, holds: ["b": "1", "c": "2", "d": "3"])
            #expect(try await db.checkpoint().generation == 4)
            #expect(try TS.listing(directory) == ["version", "checkpoint.4", "logfile.4"])
            db.close()
        }
    }

    // MARK: Directory states that are not a step of the switch

    @Test func staleCheckpointsAndOlderSegmentsAreRemoved() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 2)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("old"), v("1"))])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("old", "2")]])
            try TS.writeCheckpoint(directory, generation: 2, entries: [(v("k"), v("cp"))])
            try TS.writeLog(directory, generation: 2, records: [[TS.set("k", "log")]])
            try TS.writeCheckpoint(directory, generation: 3, entries: [(v("never"), v("committed"))])
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(try TS.listing(directory) == ["version", "checkpoint.2", "logfile.2"])
            #expect(try db.get("k") == v("log"))
            #expect(try db.get("old") == nil)
            #expect(try db.get("never") == nil)
            #expect(db.stats.keys == 1)
        }
    }

    @Test func versionWithoutATrailingNewlineIsAccepted() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeFile(directory + "/version", v("1"))
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("k"), v("v"))])
            try TS.writeLog(directory, generation: 1, records: [])
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            #expect(db.stats.generation == 1)
            #expect(try db.get("k") == v("v"))
        }
    }

    @Test func missingVersionWithLogSegmentsIsRefusedAndNothingIsWritten() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeLog(directory, generation: 0, records: [[TS.set("k", "v")]])
            let before = try TS.snapshot(directory)
            try expectInconsistentDirectory(directory)
            #expect(try TS.snapshot(directory) == before)
        }
    }

    @Test func missingVersionWithOnlyACheckpointIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("k"), v("v"))])
            try expectInconsistentDirectory(directory)
            #expect(try TS.listing(directory) == ["checkpoint.1"])
        }
    }

    @Test func unparseableVersionIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeFile(directory + "/version", v("two\n"))
            try TS.writeLog(directory, generation: 0, records: [])
            try expectInconsistentDirectory(directory)
        }
    }

    @Test func versionWithoutItsCheckpointIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 3)
            try TS.writeLog(directory, generation: 3, records: [[TS.set("k", "v")]])
            // Files a successful open would delete: an uncommitted checkpoint and a temporary.
            try TS.writeCheckpoint(directory, generation: 4, entries: [(v("k"), v("4"))])
            try TS.writeFile(directory + "/checkpoint.5.tmp", [5])
            let before = try TS.snapshot(directory)
            try expectInconsistentDirectory(directory, mentioning: "checkpoint.3")
            #expect(try TS.snapshot(directory) == before, "the failed open changed the directory")
        }
    }

    @Test func versionWithoutItsLogSegmentIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("k"), v("v"))])
            try expectInconsistentDirectory(directory, mentioning: "logfile.1")
        }
    }

    @Test func gapBetweenLogSegmentsIsRefused() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("a", "1")]])
            try TS.writeLog(directory, generation: 3, records: [[TS.set("c", "3")]])
            let before = try TS.snapshot(directory)
            try expectInconsistentDirectory(directory, mentioning: "logfile.2")
            #expect(try TS.snapshot(directory) == before)
        }
    }

    // MARK: Damage in logs this project wrote

    @Test func tornTailOfOurLogIsCutAndReported() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            for index in 0..<5 { try await db.put(Key("k\(index)"), v("value-\(index)")) }
            db.close()
            let path = directory + "/logfile.0"
            let intact = try TS.readFile(path)
            var partial: [UInt8] = []
            WALEncoder.append([.set(key: v("torn"), value: Array(repeating: 9, count: 40))], to: &partial)
            try TS.appendToFile(path, Array(partial.prefix(20)))

            let reopened = try Database.open(directory: directory, options: .forTests)
            let torn = try #require(reopened.recovery.tornTail)
            #expect(torn.file == path)
            #expect(torn.offset == intact.count)
            #expect(torn.droppedBytes == 20)
            #expect(try TS.readFile(path) == intact)
            #expect(try reopened.get("torn") == nil)
            #expect(reopened.stats.keys == 5)
            #expect(reopened.stats.logPosition == LogPosition(generation: 0, offset: intact.count))
            // The log goes on cleanly after the cut.
            try await reopened.put("after", v("repair"))
            reopened.close()

            let again = try Database.open(directory: directory, options: .forTests)
            defer { again.close() }
            #expect(again.recovery.tornTail == nil)
            #expect(try again.get("after") == v("repair"))
            #expect(try again.get("k4") == v("value-4"))
        }
    }

    @Test func zerosAfterTheLastRecordAreSpaceWrittenAheadAndAreCutQuietly() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            for index in 0..<3 { try await db.put(Key("k\(index)"), v("value-\(index)")) }
            let end = db.stats.logPosition.offset
            let path = directory + "/logfile.0"
            // While open, the log holds zeros written ahead of its records, a megabyte at a time;
            // closing cuts them.
            #expect(try TS.readFile(path).count == FileLogSegment.writeAheadStep)
            #expect(try TS.readFile(path)[end...].allSatisfy { $0 == 0 })
            db.close()
            let intact = try TS.readFile(path)
            #expect(intact.count == end)
            // A crash leaves them (here: put back by hand).
            try TS.appendToFile(path, Array(repeating: 0, count: FileLogSegment.writeAheadStep - end))

            let reopened = try Database.open(directory: directory, options: .forTests)
            #expect(reopened.recovery.tornTail == nil)  // not damage: nothing is reported
            #expect(try TS.readFile(path) == intact)
            #expect(reopened.stats.keys == 3)
            try await reopened.put("k3", v("value-3"))  // appends where the records end
            reopened.close()
            let again = try Database.open(directory: directory, options: .forTests)
            defer { again.close() }
            #expect(again.stats.keys == 4)
            #expect(try again.get("k3") == v("value-3"))
        }
    }

    @Test func zerosAfterTheRecordsOfARetiredSegmentEndItCleanly() async throws {
        try await TS.withTemporaryDirectory { directory in
            // A crash after a checkpoint's step 1 leaves logfile.0 retired, still holding the
            // zeros written ahead of its records (only close() cuts them), and logfile.1 current.
            // Built by hand: closing a database would cut the zeros first.
            try TS.writeMarker(directory, "version", 0)
            let retired = try TS.writeLog(directory, generation: 0, records: [[TS.set("old", "1")], [TS.set("both", "0")]])
            try TS.appendToFile(directory + "/logfile.0", Array(repeating: 0, count: FileLogSegment.writeAheadStep - retired.end))
            let current = try TS.writeLog(directory, generation: 1, records: [[TS.set("both", "1")], [TS.set("new", "1")]])
            let retiredFile = try TS.readFile(directory + "/logfile.0")

            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(reopened.recovery.segmentsReplayed == [0, 1])
            #expect(reopened.recovery.recordsReplayed == 4)
            #expect(reopened.recovery.tornTail == nil)  // the zeros end the segment: not damage
            #expect(reopened.recovery.truncatedCorruption == nil)
            #expect(try reopened.get("old") == v("1"))
            #expect(try reopened.get("both") == v("1"))  // logfile.1 replayed after logfile.0
            #expect(try reopened.get("new") == v("1"))
            #expect(reopened.stats.keys == 3)
            // The retired segment counts up to its last record, and is left as it is (the next
            // checkpoint deletes it); appends continue at the end of logfile.1.
            #expect(reopened.stats.walBytes == retired.end + current.end)
            #expect(reopened.stats.logPosition == LogPosition(generation: 1, offset: current.end))
            #expect(try TS.readFile(directory + "/logfile.0") == retiredFile)
        }
    }

    /// Writes 10 puts through the engine; returns where each record starts and the log's size.
    private func writeTenRecords(_ directory: String) async throws -> (starts: [Int], size: Int) {
        let db = try Database.open(directory: directory, create: true, options: .forTests)
        defer { db.close() }
        var starts: [Int] = []
        for index in 0..<10 {
            starts.append(db.stats.logPosition.offset)
            try await db.put(Key("k\(index)"), Array(repeating: UInt8(index), count: 30))
        }
        return (starts, db.stats.walBytes)
    }

    @Test func flippedByteInAnEarlyRecordOfOurLogRefusesToOpenNamingFileAndOffset() async throws {
        try await TS.withTemporaryDirectory { directory in
            let (starts, _) = try await writeTenRecords(directory)
            let path = directory + "/logfile.0"
            try TS.flipByte(path, at: starts[2] + 20)  // inside record 2's value
            let before = try TS.snapshot(directory)

            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptLog(let file, let offset, let reason) = error else {
                Issue.record("expected corruptLog, got \(String(describing: error))")
                return
            }
            #expect(file == path)
            #expect(offset == starts[2])
            #expect(reason.contains("checksum"))
            #expect(try TS.snapshot(directory) == before)
        }
    }

    @Test func flippedLengthFieldOfOurLogIsCorruptionNotATornTail() async throws {
        try await TS.withTemporaryDirectory { directory in
            let (starts, _) = try await writeTenRecords(directory)
            try TS.flipByte(directory + "/logfile.0", at: starts[1])  // record 1's payload length
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptLog(_, let offset, _) = error else {
                Issue.record("expected corruptLog, got \(String(describing: error))")
                return
            }
            #expect(offset == starts[1])
        }
    }

    @Test func corruptRecordOfOurLogIsCutWhenTruncationIsAllowed() async throws {
        try await TS.withTemporaryDirectory { directory in
            let (starts, size) = try await writeTenRecords(directory)
            let path = directory + "/logfile.0"
            try TS.flipByte(path, at: starts[6] + 20)
            var options = DatabaseOptions.forTests
            options.corruptLog = .truncate

            let db = try Database.open(directory: directory, options: options)
            let cut = try #require(db.recovery.truncatedCorruption)
            #expect(cut.file == path)
            #expect(cut.offset == starts[6])
            #expect(cut.droppedBytes == size - starts[6])
            #expect(db.recovery.tornTail == nil)
            #expect(try TS.fileSize(path) == starts[6])
            for index in 0..<6 { #expect(try db.get(Key("k\(index)")) == Array(repeating: UInt8(index), count: 30)) }
            for index in 6..<10 { #expect(try db.get(Key("k\(index)")) == nil) }
            try await db.put("after", v("cut"))
            db.close()

            let again = try Database.open(directory: directory, options: .forTests)  // default policy: the log is clean now
            defer { again.close() }
            #expect(again.recovery.truncatedCorruption == nil)
            #expect(try again.get("after") == v("cut"))
            #expect(again.stats.keys == 7)
        }
    }

    /// Allowed to truncate, an open drops the segments after the damage before it cuts the
    /// damaged one: one that stops part-way (here the first removal fails) leaves the damage for
    /// the next open to find, never a clean cut followed by records from after the gap.
    @Test func aTruncatingOpenStoppedPartWayLeavesTheDamageForTheNextOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let damage = try writeSegmentsWithDamageInTheFirst(directory)
            let store = FaultInjectingStore(files: try TS.snapshot(directory))
            var truncating = DatabaseOptions.forTests
            truncating.corruptLog = .truncate

            store.inject(.directory, effect: .fail)  // the first file removal
            #expect(throws: DatabaseError.self) { try Database.open(logStore: store, snapshotStore: store, options: truncating) }
            #expect(throws: DatabaseError.corruptLog(file: "logfile.1", offset: damage, reason: "checksum mismatch")) {
                try Database.open(logStore: store, snapshotStore: store, options: .forTests)
            }

            let db = try Database.open(logStore: store, snapshotStore: store, options: truncating)
            defer { db.close() }
            #expect(db.recovery.truncatedCorruption?.offset == damage)
            #expect(db.recovery.droppedSegments == [2, 3])
            #expect(try db.get("a") == v("1"))
            for key in ["b", "c", "d", "e"] { #expect(try db.get(Key(key)) == nil, "key \(key)") }
            #expect(!store.fileNames().contains("logfile.2") && !store.fileNames().contains("logfile.3"))
        }
    }

    @Test func corruptionInAnOlderSegmentNamesThatSegment() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [(v("cp"), v("1"))])
            let first = try TS.writeLog(directory, generation: 1, records: [[TS.set("a", "1")], [TS.set("b", "2")], [TS.set("c", "3")]])
            try TS.writeLog(directory, generation: 2, records: [[TS.set("d", "4")]])
            try TS.flipByte(directory + "/logfile.1", at: first.starts[1] + 13)  // b's key byte
            let before = try TS.snapshot(directory)
            #expect(throws: DatabaseError.corruptLog(file: directory + "/logfile.1", offset: first.starts[1], reason: "checksum mismatch")) {
                try Database.open(directory: directory, options: .forTests)
            }
            #expect(try TS.snapshot(directory) == before)
        }
    }

    @Test func truncatingCorruptionInAnOlderSegmentDropsTheLaterSegments() async throws {
        try await TS.withTemporaryDirectory { directory in
            let damage = try writeSegmentsWithDamageInTheFirst(directory)
            var options = DatabaseOptions.forTests
            options.corruptLog = .truncate

            let db = try Database.open(directory: directory, options: options)
            #expect(db.recovery.truncatedCorruption?.offset == damage)
            #expect(db.recovery.droppedSegments == [2, 3])
            #expect(try TS.listing(directory) == ["version", "checkpoint.1", "logfile.1"])
            #expect(try TS.fileSize(directory + "/logfile.1") == damage)
            #expect(db.stats.logPosition == LogPosition(generation: 1, offset: damage))
            #expect(try db.get("a") == v("1"))
            #expect(try db.get("cp") == v("1"))
            for key in ["b", "c", "d", "e"] { #expect(try db.get(Key(key)) == nil) }
            // The next checkpoint can create logfile.2 again.
            try await db.put("f", v("6"))
            let result = try await db.checkpoint()
            #expect(result.generation == 2)
            db.close()

            let again = try Database.open(directory: directory, options: .forTests)
            defer { again.close() }
            #expect(again.stats.keys == 3)
            #expect(try again.get("f") == v("6"))
        }
    }

    @Test func tornEndOfAnOlderSegmentIsCorruptionBecauseLaterSegmentsFollow() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 1, entries: [])
            let first = try TS.writeLog(directory, generation: 1, records: [[TS.set("a", "1")], [TS.set("b", "2")]])
            try TS.writeLog(directory, generation: 2, records: [[TS.set("c", "3")]])
            let path = directory + "/logfile.1"
            try TS.writeFile(path, Array(try TS.readFile(path).dropLast(3)))
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptLog(let file, let offset, _) = error else {
                Issue.record("expected corruptLog, got \(String(describing: error))")
                return
            }
            #expect(file == path)
            #expect(offset == first.starts[1])
        }
    }

    // MARK: Damage in checkpoints this project wrote

    /// Writes 20 keys and a checkpoint through the engine; returns the checkpoint's path.
    private func writeCheckpointedDatabase(_ directory: String) async throws -> String {
        let db = try Database.open(directory: directory, create: true, options: .forTests)
        defer { db.close() }
        for index in 0..<20 { try await db.put(Key("key-\(index)"), Array(repeating: UInt8(index), count: 50)) }
        let result = try await db.checkpoint()
        try await db.put("after", v("checkpoint"))
        return directory + "/checkpoint.\(result.generation)"
    }

    @Test func flippedByteInTheMiddleOfOurCheckpointRefusesToOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let path = try await writeCheckpointedDatabase(directory)
            try TS.flipByte(path, at: try TS.fileSize(path) / 2)
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptCheckpoint(let file, let reason) = error else {
                Issue.record("expected corruptCheckpoint, got \(String(describing: error))")
                return
            }
            #expect(file == path)
            #expect(reason.contains("checksum"))
            #expect(try TS.snapshot(directory) == before)
        }
    }

    @Test func flippedChecksumByteOfOurCheckpointRefusesToOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let path = try await writeCheckpointedDatabase(directory)
            try TS.flipByte(path, at: try TS.fileSize(path) - 1)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptCheckpoint(let file, let reason) = error else {
                Issue.record("expected corruptCheckpoint, got \(String(describing: error))")
                return
            }
            #expect(file == path)
            #expect(reason.contains("checksum"))
        }
    }

    @Test func truncatedCheckpointRefusesToOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let path = try await writeCheckpointedDatabase(directory)
            try TS.writeFile(path, Array(try TS.readFile(path).dropLast(7)))
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptCheckpoint(let file, _) = error else {
                Issue.record("expected corruptCheckpoint, got \(String(describing: error))")
                return
            }
            #expect(file == path)
        }
    }

    /// A committed switch whose new checkpoint is damaged: generation N (checkpoint.N, logfile.N)
    /// plus logfile.G still hold every acknowledged write, so recovery falls back to them rather
    /// than deleting them.
    @Test(arguments: [UInt64(0), 1, 7])
    func damagedCheckpointOfACommittedSwitchFallsBackToTheOldGeneration(n: UInt64) async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: n)
            let newLogSize = try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            let path = directory + "/checkpoint.\(scenario.g)"
            try TS.flipByte(path, at: try TS.fileSize(path) / 2)
            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try SwitchScenario.expect(db, holds: SwitchScenario.finalContents)
            try scenario.expectOldGenerationRecovered(db, newLogSize: newLogSize)
            #expect(db.recovery.damagedCheckpoint?.hasPrefix(path) == true)
            #expect(db.recovery.discardedSwitch == scenario.g)
            #expect(!FileManager.default.fileExists(atPath: path), "the damaged checkpoint is removed")
            #expect(!FileManager.default.fileExists(atPath: directory + "/newVersion"))
        }
    }

    /// The same damage once the old generation is already gone (step 4 ran): nothing whole is left
    /// to fall back to, so the open fails, names the file, and deletes nothing.
    @Test func damagedCheckpointOfACommittedSwitchWithoutTheOldGenerationRefusesToOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let scenario = SwitchScenario(directory: directory, n: 1)
            try scenario.writeThroughStep1()
            try scenario.writeNewCheckpoint()
            try scenario.writeNewVersion()
            try FileManager.default.removeItem(atPath: directory + "/checkpoint.1")
            let path = directory + "/checkpoint.2"
            try TS.flipByte(path, at: try TS.fileSize(path) / 2)
            let before = try TS.snapshot(directory)
            let error = #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            guard case .corruptCheckpoint(let file, _) = error else {
                Issue.record("expected corruptCheckpoint, got \(String(describing: error))")
                return
            }
            #expect(file == path)
            #expect(try TS.snapshot(directory) == before, "the failed open deleted files")
        }
    }

    @Test func checkpointWhoseHeaderNamesAnotherGenerationRefusesToOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeMarker(directory, "version", 1)
            try TS.writeCheckpoint(directory, generation: 5, entries: [(v("k"), v("v"))])
            try FileManager.default.moveItem(atPath: directory + "/checkpoint.5", toPath: directory + "/checkpoint.1")
            try TS.writeLog(directory, generation: 1, records: [])
            #expect(throws: DatabaseError.corruptCheckpoint(
                file: directory + "/checkpoint.1",
                reason: CheckpointError.generationMismatch(expected: 1, found: 5).description)
            ) {
                try Database.open(directory: directory, options: .forTests)
            }
        }
    }
}
