import Platform
import Testing

/// Joinable threads, and the one completion-to-blocking bridge.
@Suite struct ThreadTests {
    @Test func aJoinableThreadRunsItsBodyAndJoinsAnyNumberOfTimes() throws {
        let ran = Lock(false)
        let thread = try JoinableThread { ran.withLock { $0 = true } }
        thread.join()
        thread.join()
        #expect(thread.isFinished)
        #expect(!thread.isCurrent)
        #expect(ran.withLock { $0 })
    }

    @Test func aStarterThatFailsRunsNothingAndSaysWhy() {
        let failing: ThreadStarter = { _ throws(ThreadStartError) in throw ThreadStartError(code: 11) }
        #expect(throws: ThreadStartError(code: 11)) { try JoinableThread(starter: failing) {} }
        #expect(ThreadStartError(code: 11).description.contains("errno 11"))
    }

    @Test func blockingCallWaitsForACompletionFromAnotherThread() throws {
        struct Refused: Error, Equatable {}
        let answer: Result<Int, Refused> = blockingCall { completion in
            startDetachedThread { completion(.success(42)) }
        }
        #expect(try answer.get() == 42)
        let refused: Result<Int, Refused> = blockingCall { completion in completion(.failure(Refused())) }
        #expect(throws: Refused()) { try refused.get() }
    }
}
