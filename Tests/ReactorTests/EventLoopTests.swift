import Dispatch
import Platform
import Reactor
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct EventLoopTests {
    /// `stop` while tasks wait in the queue: every one runs, and so does every task they queue,
    /// before the loop's thread ends.
    @Test func stopRunsEveryQueuedTaskAndThoseTheyQueue() throws {
        let loop = try EventLoop(index: 0)
        let ended = DispatchSemaphore(value: 0)
        loop.start { ended.signal() }
        let release = DispatchSemaphore(value: 0)
        let holding = DispatchSemaphore(value: 0)
        loop.execute {  // holds the loop while the rest is queued
            holding.signal()
            release.wait()
        }
        holding.wait()
        let ran = Atomic<Int>(0)
        for _ in 0..<100 {
            loop.execute {
                ran.add(1, ordering: .relaxed)
                loop.execute { ran.add(1, ordering: .relaxed) }
            }
        }
        #expect(eventually { loop.queuedTaskCount == 100 })
        loop.stop()
        release.signal()
        ended.wait()
        #expect(ran.load(ordering: .relaxed) == 200)
    }

    /// epoll refuses a registration (a regular file cannot be watched: EPERM): `register`
    /// throws the errno, and the loop goes on.
    /// Runs `body` with a started loop, and stops it after.
    private func withRunningLoop(_ body: (EventLoop) throws -> Void) throws {
        let loop = try EventLoop(index: 0)
        let ended = DispatchSemaphore(value: 0)
        loop.start { ended.signal() }
        defer {
            loop.stop()
            ended.wait()
        }
        try body(loop)
    }

    @Test func aRefusedRegistrationIsThrown() throws {
        try withRunningLoop { loop in
            let path = "/tmp/reactor-registration-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let file = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            #expect(file >= 0)
            defer {
                close(file)
                unlink(path)
            }
            let outcome = Lock<Result<Registration, IOError>?>(nil)
            final class Ignore: EventLoopHandler { func handleEvents(_ events: EpollEvents) {} }
            loop.execute {
                let result = Result { () throws(IOError) in try loop.register(file, events: .readable, handler: Ignore()) }
                outcome.withLock { $0 = result }
            }
            #expect(eventually { outcome.withLock { $0 != nil } })
            let result = outcome.withLock { $0 }!
            #expect(throws: IOError("epoll_ctl", code: EPERM)) { try result.get() }
            #expect("\(IOError("epoll_ctl", code: EPERM))".contains("errno \(EPERM)"))
        }
    }

    /// Items appended in one iteration are flushed together at its end, and items appended by
    /// the flush form the next group.
    @Test func anIterationBatchFlushesOneIterationsItemsTogether() throws {
        try withRunningLoop { loop in
            let groups = Lock<[[Int]]>([])
            final class Holder: @unchecked Sendable { var batch: IterationBatch<Int>? }
            let holder = Holder()
            let done = DispatchSemaphore(value: 0)
            loop.execute {
                holder.batch = IterationBatch<Int>(loop: loop) { group in
                    groups.withLock { $0.append(group) }
                    if group == [1, 2, 3] { holder.batch?.append(4) }
                    if group == [4] { done.signal() }
                }
                holder.batch?.append(1)
                holder.batch?.append(2)
                holder.batch?.append(3)
            }
            done.wait()
            #expect(groups.withLock { $0 } == [[1, 2, 3], [4]])
        }
    }
}
