import Testing
@testable import Replication
import StorageEngine
import StorageEngineTesting

/// Every listing of a primary and its backup, revisions included.
private func everything(_ db: Database) throws -> [KeyEntry] {
    var all: [KeyEntry] = []
    var options = ListOptions(limit: 500)
    while true {
        let page = try db.list(.all, options)
        all += page.entries
        guard let cursor = page.cursor else { return all }
        options.after = cursor
    }
}

/// Revisions are derived from the log, so a backup that holds its primary's log holds its
/// revisions: after a random concurrent workload streamed live, after catching up from the log,
/// and after a snapshot install, the two list the same keys, values and revisions.
@Suite("Replication: revisions equal on primary and backup")
struct RevisionReplicationTests {
    /// Writers put, delete and batch at random, some with conditions that fail; checkpoints run.
    private func randomWorkload(_ db: Database, seed: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    for step in 0..<60 {
                        var batch = WriteBatch()
                        for _ in 0..<Int.random(in: 1...4, using: &random) {
                            let key = Key("k\(Int.random(in: 0..<80, using: &random))")
                            if Bool.random(using: &random) {
                                batch.put(key, Array("\(seed)/\(writer)/\(step)".utf8))
                            } else {
                                batch.delete(key)
                            }
                        }
                        if step % 7 == 3 { batch.require(Key("k\(writer)"), .modRevision(UInt64(step))) }  // usually fails
                        do {
                            try await db.write(batch)
                        } catch {
                            guard case DatabaseError.conditionFailed = error else { throw error }
                        }
                    }
                }
            }
            group.addTask {
                for _ in 0..<3 { _ = try await db.checkpoint() }
            }
            try await group.waitForAll()
        }
    }

    @Test func aLiveStreamGivesTheBackupThePrimarysRevisions() async throws {
        let (primary, backup) = try await startPairInSync()
        defer { backup.stop(); primary.stop() }
        try await randomWorkload(primary.database, seed: 1)
        // The last write is acknowledged: the backup holds everything before it.
        try await primary.database.put("last", [1])
        #expect(backup.database.revision == primary.database.revision)
        let expected = try everything(primary.database)
        #expect(!expected.isEmpty)
        #expect(try everything(backup.database) == expected)
        #expect(Set(expected.map(\.modRevision)).count > 10, "the workload made few distinct revisions")
    }

    @Test func aBackupCatchingUpFromTheLogOrASnapshotGetsThePrimarysRevisions() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        try await randomWorkload(primary.database, seed: 2)
        // Behind the last checkpoint: the backup starts from a snapshot, then the stream.
        let fromSnapshot = TestNode("s", network: network)
        try fromSnapshot.startBackup(of: "p")
        defer { fromSnapshot.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary }, "primary: \(primary.logs.all); backup: \(fromSnapshot.logs.all)")
        // The backup counts the resync on its own thread after the install, which the primary
        // may see in sync before (a loaded machine showed 0 here): await it.
        #expect(try await eventually { fromSnapshot.node.status.resyncs == 1 })
        try await randomWorkload(primary.database, seed: 3)
        try await primary.database.put("last", [2])
        #expect(fromSnapshot.database.revision == primary.database.revision)
        #expect(try everything(fromSnapshot.database) == everything(primary.database))

        // Reopened from its own files, the backup derives the same revisions again.
        fromSnapshot.stop()
        let reopened = try Database.open(logStore: fromSnapshot.store, snapshotStore: fromSnapshot.store, options: .forTests)
        defer { reopened.close() }
        #expect(reopened.revision == primary.database.revision)
        #expect(try everything(reopened) == everything(primary.database))
    }
}
