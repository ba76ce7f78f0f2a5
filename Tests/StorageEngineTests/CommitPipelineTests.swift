import Dispatch
import Platform
import Synchronization
import Testing
@testable import StorageEngine
import StorageEngineTesting

private typealias TS = TestSupport

/// `CommitPipeline`: an owner thread's rounds synced on the pipeline's own thread while the
/// owner goes on. The owner here is a serial queue standing in for an event loop.
@Suite("Commit pipeline: rounds synced off the owner's thread")
struct CommitPipelineTests {
    private final class Recorder: Sendable {
        let results = Lock<[(index: Int, result: Result<UInt64, DatabaseError>)]>([])

        func submission(_ index: Int) -> Database.Submission {
            var batch = WriteBatch()
            batch.put(Key("k\(index)"), Array("value \(index)".utf8))
            return Database.Submission(batch) { [self] result in results.withLock { $0.append((index, result)) } }
        }

        var count: Int { results.withLock { $0.count } }
    }

    /// A database whose syncs count as slow (the sync thread takes every round: the "fast"
    /// limit is 0) or as fast (the limit is 50 ms, which even a starved run's in-memory syncs
    /// stay under: the owner commits inline).
    private static func open(_ store: FaultInjectingStore, syncsAreFast: Bool = false) throws -> Database {
        let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        db.committer.fastSyncLimitNanoseconds.store(syncsAreFast ? 50_000_000 : 0, ordering: .relaxed)
        return db
    }

    /// A database with slow syncs, a serial queue as the owner, its pipeline, and the first sync
    /// held at a barrier: the round in flight stays in flight until the test releases it.
    private struct HeldRound {
        let store = FaultInjectingStore()
        let db: Database
        let owner = DispatchQueue(label: "owner")
        let pipeline: CommitPipeline
        let barrier = SyncBarrier()
        let recorder = Recorder()

        init() async throws {
            db = try CommitPipelineTests.open(store)
            let owner = self.owner
            pipeline = try db.makeCommitPipeline { task in owner.async(execute: task) }
            let db = self.db
            #expect(try await TS.eventually { db.committer.isIdle })
            store.inject(.logSync, effect: .hold(barrier))
        }

        /// Submits writes `indices` on the owner.
        func submit(_ indices: ClosedRange<Int>) {
            owner.sync { pipeline.submit(indices.map { recorder.submission($0) }) }
        }
    }

    /// With slow syncs, a round goes to the sync thread: `submit` returns at once, nothing is
    /// answered or visible until the sync is done, writes submitted meanwhile wait and form the
    /// next round, and every answer comes back on the owner, in order. (Answering before the
    /// sync, or preparing the next round before the first is applied, fails this.)
    @Test func aRoundIsAnsweredOnlyAfterItsSyncAndWhatArrivesMeanwhileIsTheNext() async throws {
        let held = try await HeldRound()
        let (store, db, pipeline, barrier, recorder) = (held.store, held.db, held.pipeline, held.barrier, held.recorder)
        held.submit(1...2)
        #expect(try await TS.eventually { barrier.arrived == 1 })
        #expect(recorder.count == 0, "answered before the sync")
        #expect(try db.get(Key("k1")) == nil, "visible before it is durable")
        held.submit(3...5)
        #expect(recorder.count == 0)
        barrier.release()
        #expect(try await TS.eventually { recorder.count == 5 })
        let results = recorder.results.withLock { $0 }
        #expect(results.map(\.index) == [1, 2, 3, 4, 5])
        let revisions = try results.map { try $0.result.get() }
        #expect(revisions == revisions.sorted() && Set(revisions).count == 5)
        #expect(store.statistics.logSyncs >= 2, "the writes that arrived during the sync were a round of their own")
        pipeline.stop()
        db.close()
        _ = store.powerLoss()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        for index in 1...5 { #expect(try reopened.get(Key("k\(index)")) == Array("value \(index)".utf8)) }
    }

    /// The round that waited behind a held sync has its own sync fail: its writers fail, writes
    /// are disabled (a later write fails too), and nothing of the failed round is visible; the
    /// round before it, durable, stays.
    @Test func aFailedSyncFailsItsRoundAndEveryLaterWrite() async throws {
        let held = try await HeldRound()  // round 1's sync is held
        let (db, barrier, recorder) = (held.db, held.barrier, held.recorder)
        defer {
            held.pipeline.stop()
            db.close()
        }
        held.store.inject(.logSync, effect: .fail)  // round 2's fails
        held.submit(1...2)
        #expect(try await TS.eventually { barrier.arrived == 1 })
        held.submit(3...4)
        barrier.release()
        #expect(try await TS.eventually { recorder.count == 4 })
        held.submit(5...5)
        #expect(try await TS.eventually { recorder.count == 5 })
        let results = Dictionary(uniqueKeysWithValues: recorder.results.withLock { $0 }.map { ($0.index, $0.result) })
        for index in [1, 2] { #expect((try? results[index]!.get()) != nil) }
        for index in [3, 4, 5] { #expect(throws: DatabaseError.self) { try results[index]!.get() } }
        #expect(try db.get(Key("k2")) == Array("value 2".utf8))
        for index in 3...5 { #expect(try db.get(Key("k\(index)")) == nil) }
    }

    /// On a fast disk a round is synced on the owner and answered before `submit` returns: no
    /// thread hand-off.
    @Test func withFastSyncsTheOwnerCommitsBeforeSubmitReturns() async throws {
        let store = FaultInjectingStore()
        let db = try Self.open(store, syncsAreFast: true)
        defer { db.close() }
        let owner = DispatchQueue(label: "owner")
        let pipeline = try db.makeCommitPipeline { task in owner.async(execute: task) }
        defer { pipeline.stop() }
        let recorder = Recorder()
        let attempt = Atomic<Int>(0)
        let inline = try await TS.eventually {
            let index = attempt.add(1, ordering: .relaxed).newValue
            let answeredBeforeReturn = owner.sync { () -> Bool in
                pipeline.submit([recorder.submission(index), recorder.submission(index + 1000)])
                return recorder.results.withLock { results in [index, index + 1000].allSatisfy { wanted in results.contains { $0.index == wanted } } }
            }
            return answeredBeforeReturn
        }
        #expect(inline)
        let last = attempt.load(ordering: .relaxed)
        #expect(try db.get(Key("k\(last)")) == Array("value \(last)".utf8))
    }

    /// `stop` lets the round in flight and what waits behind it commit before the sync thread ends.
    @Test func stopCommitsTheRoundInFlightAndWhatIsPending() async throws {
        let held = try await HeldRound()
        let (db, barrier, recorder) = (held.db, held.barrier, held.recorder)
        defer { db.close() }
        held.submit(1...2)
        #expect(try await TS.eventually { barrier.arrived == 1 })
        held.submit(3...3)
        barrier.release()
        held.pipeline.stop()
        for index in 1...3 { #expect(try db.get(Key("k\(index)")) == Array("value \(index)".utf8)) }
        #expect(try await TS.eventually { recorder.count == 3 })
    }
}
