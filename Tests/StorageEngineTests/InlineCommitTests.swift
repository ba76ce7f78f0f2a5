import Dispatch
import Foundation
import Synchronization
import Testing
@testable import StorageEngine

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// `submit(_:mayCommitOnCallingThread:completion:)`: a lone writer commits on its own thread.
@Suite("Inline commits: a lone writer's round on its own thread")
struct InlineCommitTests {
    @Test func aLoneSubmitCommitsOnTheCallingThreadBeforeItReturns() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store)
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
        let reopened = try Database.open(logStore: store, snapshotStore: store)
        defer { reopened.close() }
        #expect(try reopened.get(Key("k\(last)")) == v("\(last)"))
    }

    @Test func concurrentSubmittersThatMayCommitInlineLoseNothing() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store)
        let writers = 8
        let perWriter = 150
        let failures = Mutex<[String]>([])
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
        let reopened = try Database.open(logStore: store, snapshotStore: store)
        defer { reopened.close() }
        #expect(reopened.stats.keys == writers * (perWriter + 1))
        for writer in 0..<writers {
            #expect(try reopened.get(Key("w\(writer)-\(perWriter - 1)")) == v("\(writer):\(perWriter - 1)"))
            #expect(try reopened.get(Key("w\(writer)-last")) == v("\(perWriter - 1 - (perWriter - 1) % 3)"))
        }
    }

    @Test func closeWaitsForAnInlineRoundAndLaterSubmitsAreRefused() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store)
        var batch = WriteBatch()
        batch.put("k", v("1"))
        let outcome = Mutex<Result<Void, DatabaseError>?>(nil)
        try db.submit(batch, mayCommitOnCallingThread: true) { result in outcome.withLock { $0 = result } }
        db.close()
        // Inline or queued, the write was answered, with success, before close returned.
        let answered = try #require(outcome.withLock { $0 }, "close returned before the write was answered")
        #expect(throws: Never.self) { try answered.get() }
        let refused = Mutex<Result<Void, DatabaseError>?>(nil)
        try db.submit(batch, mayCommitOnCallingThread: true) { result in refused.withLock { $0 = result } }
        guard case .failure(.closed) = refused.withLock({ $0 }) else {
            Issue.record("a submit after close gave \(String(describing: refused.withLock { $0 }))")
            return
        }
    }
}
