import Foundation
import Platform
import Synchronization
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

private typealias TS = TestSupport

private func value(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A flag that tells writer tasks to stop, and how many writes they have committed.
private final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    private let writes = Atomic<Int>(0)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
    var committed: Int { writes.load(ordering: .relaxed) }
    func commit() { writes.add(1, ordering: .relaxed) }
}

/// Ordered listing, revisions and conditional writes (issue 11): the engine's side.
@Suite("Browsing: order, revisions, conditions")
struct BrowsingTests {

    private func openMemory(_ store: FaultInjectingStore = FaultInjectingStore()) throws -> Database {
        try Database.open(logStore: store, snapshotStore: store)
    }

    /// Every entry of the database, ascending, with revisions, through pages of `limit`.
    private func everything(_ db: Database, limit: Int = 1000, reverse: Bool = false) throws -> [KeyEntry] {
        var all: [KeyEntry] = []
        var options = ListOptions(limit: limit, reverse: reverse)
        while true {
            let page = try db.list(.all, options)
            all += page.entries
            guard let cursor = page.cursor else { return all }
            options.after = cursor
        }
    }

    // MARK: Order

    @Test func keysListInUnsignedByteOrderWithBinaryKeysAndPrefixesFirst() async throws {
        let db = try openMemory()
        let keys: [[UInt8]] = [
            [0xFF], [0x00], [0x00, 0x00], [0x61], [0x61, 0x00], [0x61, 0x62], [0x61, 0xFF], [0x7F], [0x80],
            Array(repeating: 0x61, count: 15), Array(repeating: 0x61, count: 16), Array(repeating: 0x61, count: 40),
            [0xFF, 0xFF, 0x00], [0x01] + Array(repeating: 0xFF, count: 20),
        ]
        var batch = WriteBatch()
        for key in keys.shuffled() { batch.put(Key(key), key) }
        try await db.write(batch)
        let expected = keys.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(try db.list(.all).entries.map(\.key.bytes) == expected)
        #expect(try db.list(.all, ListOptions(reverse: true)).entries.map(\.key.bytes) == expected.reversed())
        // Every value came back with its key.
        #expect(try db.list(.all).entries.allSatisfy { $0.value == $0.key.bytes })
        // A prefix, including 0xFF bytes (whose range has no simple end).
        #expect(try db.list(.prefix(Key([0x61]))).entries.map(\.key.bytes) == expected.filter { $0.first == 0x61 })
        #expect(try db.list(.prefix(Key([0xFF]))).entries.map(\.key.bytes) == [[0xFF], [0xFF, 0xFF, 0x00]])
        #expect(try db.list(.prefix(Key([0xFF, 0xFF]))).entries.map(\.key.bytes) == [[0xFF, 0xFF, 0x00]])
        #expect(try db.count(.prefix(Key([0x00]))).count == 2)
        // [start, end): start included, end excluded.
        let range = KeyRange(start: Key([0x61]), end: Key([0x61, 0xFF]))
        #expect(try db.list(range).entries.map(\.key.bytes) == expected.filter {
            !$0.lexicographicallyPrecedes([0x61]) && $0.lexicographicallyPrecedes([0x61, 0xFF])
        })
        #expect(try db.count(range).count == 6)
        #expect(try db.list(KeyRange(start: Key([0x80]), end: Key([0x80]))).entries.isEmpty)
        #expect(try db.list(KeyRange(start: Key([0x81]), end: Key([0x80]))).entries.isEmpty)
        #expect(throws: DatabaseError.invalidLimit(0)) { try db.list(.all, ListOptions(limit: 0)) }
        db.close()
    }

    /// Thousands of keys, so that shards split and merge; every listing against a sorted model.
    @Test func listingsMatchASortedModelThroughSplitsAndMerges() async throws {
        let db = try openMemory()
        var model: [[UInt8]: [UInt8]] = [:]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<40 {
            var batch = WriteBatch()
            for _ in 0..<250 {
                let key = Array(String(format: "k%05d", Int.random(in: 0..<6000, using: &generator)).utf8)
                if round >= 20 && Bool.random(using: &generator) || round >= 30 {
                    batch.delete(Key(key))
                    model[key] = nil
                } else {
                    let bytes = Array("v\(round)".utf8)
                    batch.put(Key(key), bytes)
                    model[key] = bytes
                }
            }
            try await db.write(batch)
            let sorted = model.keys.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try everything(db, limit: 97).map(\.key.bytes) == sorted, "round \(round)")
            #expect(try everything(db, limit: 1000, reverse: true).map(\.key.bytes) == sorted.reversed(), "round \(round)")
            #expect(db.stats.keys == sorted.count)
            #expect(try db.count(.all).count == sorted.count)
            // A random range, both directions, with a limit.
            let a = Array(String(format: "k%05d", Int.random(in: 0..<6000, using: &generator)).utf8)
            let b = Array(String(format: "k%05d", Int.random(in: 0..<6000, using: &generator)).utf8)
            let (low, high) = a.lexicographicallyPrecedes(b) ? (a, b) : (b, a)
            let inRange = sorted.filter { !$0.lexicographicallyPrecedes(low) && $0.lexicographicallyPrecedes(high) }
            let range = KeyRange(start: Key(low), end: Key(high))
            #expect(try db.count(range).count == inRange.count, "round \(round)")
            let page = try db.list(range, ListOptions(limit: 50))
            #expect(page.entries.map(\.key.bytes) == Array(inRange.prefix(50)))
            #expect(page.more == (inRange.count > 50))
            let reversed = try db.list(range, ListOptions(limit: 50, reverse: true))
            #expect(reversed.entries.map(\.key.bytes) == Array(inRange.reversed().prefix(50)))
            for entry in page.entries { #expect(entry.value == model[entry.key.bytes]) }
        }
        db.close()
    }

    /// Writers insert and delete keys while a reader pages through: every key present during the
    /// whole listing is seen exactly once, and nothing is seen twice.
    @Test func paginationDuringConcurrentWritesSeesEveryStableKeyExactlyOnce() async throws {
        let db = try openMemory()
        var stable = WriteBatch()
        for index in 0..<3000 { stable.put(Key(String(format: "s%05d", index * 2)), value("stable")) }
        try await db.write(stable)
        let stop = StopFlag()
        let writers = (0..<4).map { writer in
            Task {
                var round = 0
                while !stop.isSet {
                    var batch = WriteBatch()
                    for _ in 0..<20 {
                        let key = Key(String(format: "s%05d", Int.random(in: 0..<3000) * 2 + 1))  // odd: never stable
                        if Bool.random() { batch.put(key, value("churn")) } else { batch.delete(key) }
                    }
                    try await db.write(batch)
                    stop.commit()
                    round += 1
                }
                return round
            }
        }
        for reverse in [false, true] {
            for limit in [1, 7, 100] {
              // Until writers committed during the pass: a pass that raced no write proves nothing.
              for attempt in 0..<200 {
                let writesBefore = stop.committed
                var seen: [Key: Int] = [:]
                var options = ListOptions(limit: limit, reverse: reverse, keysOnly: true)
                var previous: Key?
                while true {
                    let page = try db.list(.all, options)
                    for entry in page.entries {
                        seen[entry.key, default: 0] += 1
                        if let previous { #expect(reverse ? entry.key < previous : previous < entry.key) }
                        previous = entry.key
                        #expect(entry.value == nil)
                    }
                    guard let cursor = page.cursor else { break }
                    options.after = cursor
                    await Task.yield()  // let the writers' tasks run between pages
                }
                #expect(seen.values.allSatisfy { $0 == 1 }, "a key seen twice (limit \(limit), reverse \(reverse))")
                for index in 0..<3000 {
                    #expect(seen[Key(String(format: "s%05d", index * 2))] == 1, "stable key \(index * 2) missed")
                }
                if stop.committed > writesBefore { break }
                #expect(attempt < 199, "no write committed during any pass")
              }
            }
        }
        stop.set()
        for writer in writers { #expect(try await writer.value > 0) }
        db.close()
    }

    /// Batches that set ten keys to one value: a page holds all ten with the same value, or none.
    @Test func aPageSeesABatchWholeOrNotAtAll() async throws {
        let db = try openMemory()
        let stop = StopFlag()
        let writer = Task {
            var round = 0
            while !stop.isSet {
                var batch = WriteBatch()
                for index in 0..<10 { batch.put(Key("batch/\(index)"), Array("\(round)".utf8)) }
                if round % 3 == 2 { for index in 0..<10 { batch.delete(Key("batch/\(index)")) } }
                try await db.write(batch)
                stop.commit()
                round += 1
            }
            return round
        }
        var pages = 0
        var sawFull = false
        while pages < 3000 || !sawFull || stop.committed < 100 {
            await Task.yield()  // let the writer's task run between pages
            let page = try db.list(.prefix("batch/"), ListOptions(limit: 20))
            #expect(page.entries.count == 0 || page.entries.count == 10, "a torn batch: \(page.entries.count) keys")
            #expect(Set(page.entries.map(\.value)).count <= 1, "values of two batches in one page")
            #expect(Set(page.entries.map(\.modRevision)).count <= 1)
            if page.entries.count == 10 { sawFull = true }
            pages += 1
            if pages > 100_000 { break }
        }
        stop.set()
        #expect(try await writer.value > 0)
        #expect(sawFull)
        db.close()
    }

    // MARK: Revisions

    @Test func eachCommittedWriteAddsOneRevisionAndKeysRecordCreateAndMod() async throws {
        let db = try openMemory()
        #expect(db.revision == 0)
        #expect(try await db.put("a", value("1")) == 1)
        #expect(try await db.put("b", value("1")) == 2)
        #expect(try await db.put("a", value("2")) == 3)
        #expect(try db.entry("a") == KeyEntry(key: "a", value: value("2"), createRevision: 1, modRevision: 3))
        #expect(try await db.delete("missing") == 4, "a delete of a missing key is still a committed write")
        #expect(try await db.delete("a") == 5)
        #expect(try db.entry("a") == nil)
        #expect(try await db.put("a", value("3")) == 6)
        #expect(try db.entry("a")?.createRevision == 6, "a re-created key starts a new incarnation")
        var batch = WriteBatch()
        batch.put("c", value("1"))
        batch.put("d", value("1"))
        batch.put("c", value("2"))
        #expect(try await db.write(batch) == 7, "a batch is one revision")
        #expect(try db.entry("c") == KeyEntry(key: "c", value: value("2"), createRevision: 7, modRevision: 7))
        #expect(try await db.write(WriteBatch()) == 7, "an empty batch writes nothing")
        #expect(db.revision == 7)
        #expect(try db.list(.all).revision == 7)
        #expect(try db.count(.all) == (4, 7))
        db.close()
    }

    @Test func revisionsSurviveCheckpointsReopenAndATornTail() async throws {
        try await TS.withTemporaryDirectory { directory in
            var db = try Database.open(directory: directory, create: true)
            for index in 0..<300 { try await db.put(Key("k\(index % 50)"), value("\(index)")) }
            try await db.delete("k7")
            let beforeCheckpoint = try everything(db)
            _ = try await db.checkpoint()
            for index in 0..<40 { try await db.put(Key("k\(index)"), value("after \(index)")) }
            let expected = try everything(db)
            let revision = db.revision
            #expect(revision == 341)
            #expect(beforeCheckpoint != expected)
            db.close()
            // Reopen: the checkpoint's revisions, then one per replayed record.
            db = try Database.open(directory: directory)
            #expect(try everything(db) == expected)
            #expect(db.revision == revision)
            // A torn tail is cut: the revisions of what remains are unchanged.
            db.close()
            let logs = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("logfile.") }.sorted()
            try TS.appendToFile(directory + "/" + logs.last!, [0x10, 0x00, 0x00])
            db = try Database.open(directory: directory)
            #expect(db.recovery.tornTail != nil)
            #expect(try everything(db) == expected)
            #expect(try await db.put("new", value("x")) == revision + 1)
            db.close()
        }
    }

    /// Random power cuts on the fault-injecting store: every acknowledged write's key has, after
    /// recovery, the revision the write was acknowledged with (unless a later write to it was in
    /// flight), and the store's revision is at least the last acknowledged one.
    @Test func revisionsSurviveRandomPowerCuts() async throws {
        for seed in 0..<40 {
            let store = FaultInjectingStore()
            var db = try openMemory(store)
            var acknowledged: [Key: UInt64] = [:]
            var lastRevision: UInt64 = 0
            for index in 0..<(20 + seed * 3) {
                let key = Key("k\(index % 17)")
                if index % 11 == 5 { _ = try await db.checkpoint() }
                let revision = try await db.put(key, value("\(index)"))
                acknowledged[key] = revision
                lastRevision = revision
            }
            // In flight when the power goes: one put whose outcome is unknown.
            let inFlight = Key("k\(seed % 17)")
            let writing = db
            let flying = Task { try? await writing.put(inFlight, value("in flight")) }
            store.powerLoss(seed: UInt64(seed))
            _ = await flying.value
            db.close()
            store.powerOn()
            db = try openMemory(store)
            #expect(db.revision >= lastRevision, "seed \(seed)")
            for (key, revision) in acknowledged {
                let entry = try db.entry(key)
                if key == inFlight, entry?.modRevision == lastRevision + 1 { continue }
                #expect(entry?.modRevision == revision, "seed \(seed): \(key)")
            }
            db.close()
        }
    }

    @Test func goDirectoriesOpenWithEveryKeyAtRevisionOneAndTheirLogAfterIt() async throws {
        try await TS.withTemporaryDirectory { directory in
            try TS.writeCheckpoint(directory, generation: 1, entries: [(Array("z".utf8), value("1")), (Array("a".utf8), value("2"))])
            try TS.writeLog(directory, generation: 1, records: [[TS.set("m", "3")], [TS.set("a", "4")]])
            try TS.writeMarker(directory, "version", 1)
            let db = try Database.open(directory: directory)
            #expect(try db.list(.all).entries == [
                KeyEntry(key: "a", value: value("4"), createRevision: 1, modRevision: 3),
                KeyEntry(key: "m", value: value("3"), createRevision: 2, modRevision: 2),
                KeyEntry(key: "z", value: value("1"), createRevision: 1, modRevision: 1),
            ])
            #expect(db.revision == 3)
            db.close()
        }
    }

    // MARK: Conditions

    @Test func conditionsHoldOrFailTheWriteAloneWritingNothing() async throws {
        let db = try openMemory()
        let created = try await db.put("a", value("1"))
        func conditional(_ key: Key, _ condition: WriteCondition, put: Key = "out") -> WriteBatch {
            var batch = WriteBatch()
            batch.require(key, condition)
            batch.put(put, value("written"))
            return batch
        }
        #expect(try await db.write(conditional("a", .present)) == created + 1)
        #expect(try await db.write(conditional("a", .modRevision(created))) == created + 2)
        #expect(try await db.write(conditional("a", .value(value("1")))) == created + 3)
        #expect(try await db.write(conditional("b", .absent)) == created + 4)
        let before = try everything(db)
        let revision = db.revision
        let failures: [(Key, WriteCondition, UInt64)] = [
            ("a", .absent, created), ("b", .present, 0), ("a", .modRevision(created + 1), created),
            ("a", .value(value("2")), created), ("b", .modRevision(0), 0), ("b", .value([]), 0),
        ]
        for (key, condition, current) in failures {
            await #expect(throws: DatabaseError.conditionFailed([ConditionFailure(key: key, condition: condition, currentRevision: current)])) {
                try await db.write(conditional(key, condition, put: "never"))
            }
        }
        #expect(try everything(db) == before, "a failed condition wrote something")
        #expect(db.revision == revision, "a failed condition used a revision")
        // Every failed condition is named, not just the first.
        var batch = WriteBatch()
        batch.require("a", .absent)
        batch.require("a", .present)
        batch.require("b", .present)
        batch.delete("a")
        let error = await #expect(throws: DatabaseError.self) { try await db.write(batch) }
        guard case .conditionFailed(let named)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(named.map(\.key) == ["a", "b"])
        #expect(try db.get("a") == value("1"))
        // A batch of conditions only checks them.
        var check = WriteBatch()
        check.require("a", .present)
        #expect(try await db.write(check) == revision)
        db.close()
    }

    /// A condition sees every write queued before it in the same group-commit round.
    @Test func conditionsSeeEarlierWritesOfTheSameRound() async throws {
        let db = try openMemory()
        let results = Lock<[Int: Result<UInt64, DatabaseError>]>([:])
        let done = DispatchSemaphore(value: 0)
        var writes: [Database.Submission] = []
        for index in 0..<3 {
            var batch = WriteBatch()
            if index == 0 { batch.put("x", value("0")) }
            if index == 1 { batch.require("x", .absent); batch.put("x", value("1")) }  // fails: write 0 created it
            if index == 2 { batch.require("x", .modRevision(1)); batch.put("x", value("2")) }
            writes.append(Database.Submission(batch) { result in
                results.withLock { $0[index] = result }
                done.signal()
            })
        }
        db.submit(writes, mayCommitOnCallingThread: false)
        for _ in 0..<3 { done.wait() }
        let outcome = results.withLock { $0 }
        #expect(outcome[0] == .success(1))
        #expect(outcome[1] == .failure(.conditionFailed([ConditionFailure(key: "x", condition: .absent, currentRevision: 1)])))
        #expect(outcome[2] == .success(2))
        #expect(try db.entry("x") == KeyEntry(key: "x", value: value("2"), createRevision: 1, modRevision: 2))
        db.close()
    }

    @Test func racingCreatesHaveOneWinner() async throws {
        let db = try openMemory()
        for round in 0..<20 {
            let key = Key("race\(round)")
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        var batch = WriteBatch()
                        batch.require(key, .absent)
                        batch.put(key, Array("\(writer)".utf8))
                        do {
                            try await db.write(batch)
                            return true
                        } catch DatabaseError.conditionFailed {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1, "round \(round)")
        }
        db.close()
    }

    /// 32 concurrent compare-and-set loops incrementing one counter lose no increment.
    @Test func compareAndSetIncrementsFromManyWritersLoseNothing() async throws {
        let db = try openMemory()
        try await db.put("counter", value("0"))
        let perWriter = 25
        let retries = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<32 {
                group.addTask {
                    var retries = 0
                    for _ in 0..<perWriter {
                        while true {
                            let current = try db.entry("counter")!
                            let number = Int(String(decoding: current.value!, as: UTF8.self))!
                            var batch = WriteBatch()
                            batch.require("counter", .modRevision(current.modRevision))
                            batch.put("counter", Array("\(number + 1)".utf8))
                            do {
                                try await db.write(batch)
                                break
                            } catch DatabaseError.conditionFailed {
                                retries += 1
                            }
                        }
                    }
                    return retries
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(try db.get("counter") == value("\(32 * perWriter)"))
        #expect(retries > 0, "no write ever raced: the test proved nothing")
        db.close()
    }

    @Test func conditionKeysAreValidatedLikeWrites() async throws {
        let db = try openMemory()
        var batch = WriteBatch()
        batch.require(Key(""), .absent)
        await #expect(throws: DatabaseError.emptyKey) { try await db.write(batch) }
        var large = WriteBatch()
        large.require(Key(Array(repeating: 0x61, count: db.options.limits.maxKeySize + 1)), .absent)
        await #expect(throws: DatabaseError.self) { try await db.write(large) }
        #expect(db.revision == 0)
        db.close()
    }
}
