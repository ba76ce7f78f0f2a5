import Dispatch
import Foundation
import Platform
import Synchronization
import Testing
@testable import StorageEngine
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A database over `store` whose "fast sync" limit is 50 ms instead of 1 ms: these tests need
/// rounds that count as fast (an in-memory store's, which a starved or sanitized run can make
/// average over 1 ms) and, in one test, rounds that count as slow (200 ms, injected).
private func openForInlineCommits(_ store: FaultInjectingStore) throws -> Database {
    let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
    db.committer.fastSyncLimitNanoseconds.store(50_000_000, ordering: .relaxed)
    return db
}

/// `submit(_:mayCommitOnCallingThread:completion:)`: a lone writer commits on its own thread.
@Suite("Inline commits: a lone writer's round on its own thread")
struct InlineCommitTests {
    @Test func aLoneSubmitCommitsOnTheCallingThreadBeforeItReturns() async throws {
        let store = FaultInjectingStore()
        let db = try openForInlineCommits(store)
        defer { db.close() }
        // Right after open the committer thread may not be asleep yet: then the write goes to it,
        // as without the option. Retry until a write finds it idle.
        let attempt = Atomic<Int>(0)
        let committedInline = try await TS.eventually {
            let number = attempt.add(1, ordering: .relaxed).newValue
            let completedBeforeReturn = Atomic<Bool>(false)
            let done = DispatchSemaphore(value: 0)
            var batch = WriteBatch()
            batch.put(Key("k\(number)"), v("\(number)"))
            try db.submit(batch, mayCommitOnCallingThread: true) { result in
                if case .success = result { completedBeforeReturn.store(true, ordering: .relaxed) }
                done.signal()
            }
            let inline = completedBeforeReturn.load(ordering: .relaxed)
            done.wait()
            return inline
        }
        #expect(committedInline)
        let last = attempt.load(ordering: .relaxed)
        #expect(try db.get(Key("k\(last)")) == v("\(last)"))
        // Durable: it survives a power loss.
        db.close()
        _ = store.powerLoss()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(try reopened.get(Key("k\(last)")) == v("\(last)"))
    }

    @Test func concurrentSubmittersThatMayCommitInlineLoseNothing() async throws {
        let store = FaultInjectingStore()
        let db = try openForInlineCommits(store)
        let writers = 8
        let perWriter = 150
        let failures = Lock<[String]>([])
        let finished = DispatchSemaphore(value: 0)
        for writer in 0..<writers {
            startDetachedThread {
                for index in 0..<perWriter {
                    var batch = WriteBatch()
                    batch.put(Key("w\(writer)-\(index)"), v("\(writer):\(index)"))
                    if index % 3 == 0 { batch.put(Key("w\(writer)-last"), v("\(index)")) }
                    let done = DispatchSemaphore(value: 0)
                    do {
                        try db.submit(batch, mayCommitOnCallingThread: true) { result in
                            if case .failure(let error) = result { failures.withLock { $0.append("\(error)") } }
                            done.signal()
                        }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                        done.signal()
                    }
                    done.wait()
                }
                finished.signal()
            }
        }
        for _ in 0..<writers { finished.wait() }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(db.stats.keys == writers * (perWriter + 1))
        db.close()
        _ = store.powerLoss()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(reopened.stats.keys == writers * (perWriter + 1))
        for writer in 0..<writers {
            #expect(try reopened.get(Key("w\(writer)-\(perWriter - 1)")) == v("\(writer):\(perWriter - 1)"))
            #expect(try reopened.get(Key("w\(writer)-last")) == v("\(perWriter - 1 - (perWriter - 1) % 3)"))
        }
    }

    @Test func closeWaitsForAnInlineRoundAndLaterSubmitsAreRefused() async throws {
        let store = FaultInjectingStore()
        let db = try openForInlineCommits(store)
        var batch = WriteBatch()
        batch.put("k", v("1"))
        let outcome = Lock<Result<UInt64, DatabaseError>?>(nil)
        try db.submit(batch, mayCommitOnCallingThread: true) { result in outcome.withLock { $0 = result } }
        db.close()
        // Inline or queued, the write was answered, with success, before close returned.
        let answered = try #require(outcome.withLock { $0 }, "close returned before the write was answered")
        #expect(throws: Never.self) { try answered.get() }
        let refused = Lock<Result<UInt64, DatabaseError>?>(nil)
        try db.submit(batch, mayCommitOnCallingThread: true) { result in refused.withLock { $0 = result } }
        guard case .failure(.closed) = refused.withLock({ $0 }) else {
            Issue.record("a submit after close gave \(String(describing: refused.withLock { $0 }))")
            return
        }
    }
    /// Submits `group` (keys and values) with `mayCommitOnCallingThread`; returns whether every
    /// completion ran on the calling thread before `submit` returned, and the results.
    private static func submitGroup(
        _ db: Database, _ group: [(key: Key, value: [UInt8])]
    ) -> (inline: Bool, results: [Result<UInt64, DatabaseError>]) {
        let caller = pthread_self()
        let results = Lock<[Int: (result: Result<UInt64, DatabaseError>, onCaller: Bool)]>([:])
        let done = DispatchSemaphore(value: 0)
        let writes = group.enumerated().map { index, write in
            var batch = WriteBatch()
            batch.put(write.key, write.value)
            return Database.Submission(batch) { result in
                let onCaller = pthread_equal(pthread_self(), caller) != 0
                results.withLock { $0[index] = (result, onCaller) }
                done.signal()
            }
        }
        db.submit(writes, mayCommitOnCallingThread: true)
        let answeredBeforeReturn = results.withLock { $0.count } == group.count
        for _ in group { done.wait() }
        let all = results.withLock { all in (0..<group.count).map { all[$0]! } }
        return (answeredBeforeReturn && all.allSatisfy(\.onCaller), all.map(\.result))
    }

    @Test func aGroupIsOneRoundOnTheCallingThreadInOrderAndAnInvalidWriteFailsAlone() async throws {
        let store = FaultInjectingStore()
        let db = try openForInlineCommits(store)
        defer { db.close() }
        let tooLong = Key([UInt8](repeating: 0x6B, count: DatabaseOptions.Limits().maxKeySize + 1))
        let group: [(key: Key, value: [UInt8])] = [("a", v("1")), ("b", v("2")), (tooLong, v("x")), ("a", v("3"))]
        var syncsBefore = 0
        var outcome: (inline: Bool, results: [Result<UInt64, DatabaseError>]) = (false, [])
        // Right after open, or after a round, the committer thread may not be asleep yet; then
        // the group goes to it. Retry until a group finds it idle.
        let committedInline = try await TS.eventually {
            syncsBefore = db.stats.syncs
            outcome = InlineCommitTests.submitGroup(db, group)
            return outcome.inline
        }
        #expect(committedInline)
        #expect(db.stats.syncs == syncsBefore + 1, "the group was not one round")
        #expect(throws: Never.self) { try outcome.results[0].get() }
        #expect(throws: Never.self) { try outcome.results[1].get() }
        #expect(throws: Never.self) { try outcome.results[3].get() }
        guard case .failure(.keyTooLarge) = outcome.results[2] else {
            Issue.record("the oversized key gave \(outcome.results[2])")
            return
        }
        #expect(try db.get("a") == v("3"))  // in order: the later write of "a" wins
        #expect(try db.get("b") == v("2"))
        #expect(try db.get(tooLong) == nil)
    }

    /// An event loop must not stall for a slow disk's sync: after slow syncs, groups go to the
    /// committer thread; once syncs are fast again, they commit inline again.
    @Test func afterSlowSyncsGroupsGoToTheCommitterThread() async throws {
        let store = FaultInjectingStore()
        let db = try openForInlineCommits(store)
        defer { db.close() }
        // Four rounds of 200 ms take the moving average (a step of 1/8 per round) from 0.1 ms to
        // over 80 ms, above the 50 ms limit; about four fast rounds bring it back under.
        store.inject(.logSync, times: 4, effect: .delay(.milliseconds(200)))
        for index in 0..<4 { try await db.put(Key("slow\(index)"), v("\(index)")) }
        // Idle: only the slow syncs keep the group off this thread.
        #expect(try await TS.eventually { db.committer.isIdle })
        let slow = InlineCommitTests.submitGroup(db, [("g", v("1")), ("h", v("2"))])
        #expect(!slow.inline, "a group waited for a slow disk's sync on the calling thread")
        #expect(slow.results.allSatisfy { (try? $0.get()) != nil })
        #expect(try db.get("h") == v("2"))
        // Fast syncs bring the average back down.
        var attempt = 0
        let inlineAgain = try await TS.eventually {
            attempt += 1
            return InlineCommitTests.submitGroup(db, [(Key("fast\(attempt)"), v("\(attempt)"))]).inline
        }
        #expect(inlineAgain)
    }
}
