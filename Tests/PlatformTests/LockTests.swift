import Dispatch
import Glibc
import Platform
import Testing

@Suite("Lock: the pthread-mutex-guarded value")
struct LockTests {
    /// Two threads adding under the lock lose no increment: the lock excludes. (Without the lock,
    /// `counter += 1` from two threads loses updates, and TSan reports it.)
    @Test func incrementsFromTwoThreadsAreAllKept() {
        let counter = Lock(0)
        let perThread = 100_000
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            for _ in 0..<perThread { counter.withLock { $0 += 1 } }
        }
        #expect(counter.withLock { $0 } == 2 * perThread)
    }

    @Test func returnsWhatTheBodyReturnsAndRethrowsItsTypedError() {
        struct Refused: Error, Equatable {}
        let lock = Lock([1, 2, 3])
        #expect(lock.withLock { $0.removeLast() } == 3)
        #expect(throws: Refused()) {
            try lock.withLock { (values: inout [Int]) throws(Refused) in
                values.append(9)
                throw Refused()
            }
        }
        // The change made before the throw stays, and the lock was released (else this deadlocks).
        #expect(lock.withLock { $0 } == [1, 2, 9])
    }

    /// The value is placed after the mutex at its own alignment; a value with a larger alignment
    /// than the mutex's and a zero-sized one both work.
    @Test func valuesOfAnyLayoutAreStoredAndFreed() {
        final class Tracked { nonisolated(unsafe) static var alive = 0; init() { Tracked.alive += 1 }; deinit { Tracked.alive -= 1 } }
        do {
            let aligned = Lock(SIMD4<Double>(1, 2, 3, 4))
            #expect(aligned.withLock { $0.w } == 4)
            let empty = Lock(())
            empty.withLock { _ in }
            let tracked = Lock(Tracked())
            tracked.withLock { _ in }
            #expect(Tracked.alive == 1)
        }
        #expect(Tracked.alive == 0, "deinit deinitialises the value")
    }
}

#if DEBUG
extension LockTests {
    /// Debug builds use an error-checking mutex: taking the lock again on its own thread, which in
    /// release deadlocks silently, stops the process with a trap (SIGILL, Swift's assertion
    /// failure). Without the error check the child deadlocks; its alarm then ends it with SIGALRM,
    /// which is not the expected exit, so the test fails instead of hanging.
    @Test func takingTheLockAgainOnItsOwnThreadTrapsInDebugBuilds() async {
        await #expect(processExitsWith: .signal(SIGILL)) {
            alarm(10)
            let lock = Lock(0)
            lock.withLock { _ in lock.withLock { $0 += 1 } }
        }
    }
}
#endif
