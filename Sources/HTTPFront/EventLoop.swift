import CLinuxShims
import Platform
import StorageEngine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Something an event loop watches: a listening socket or a connection.
protocol EventLoopHandler: AnyObject {
    /// Called on the loop's thread with the ready events (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR).
    func handleEvents(_ events: UInt32)
    /// Called on the loop's thread in the iteration after the handler asked for it with
    /// `EventLoop.continueNextIteration` (it stopped with work left, to let the others have a turn).
    func continueWork()
}

extension EventLoopHandler {
    func continueWork() {}
}

/// One thread, one epoll instance, and the sockets registered with it.
///
/// The loop's protocol, per iteration:
/// 1. Wait in epoll_wait for ready sockets, for the eventfd that `execute` writes, or for the
///    tick (250 ms).
///    If a handler left work for this iteration (step 2b), do not wait: poll.
/// 2. Call each ready socket's handler.
///    2b. Call `continueWork` of each handler that asked in the previous iteration
///    (`continueNextIteration`): a connection that had used its turn's share of work
///    (`HTTPConnection.maxRequestsPerTurn`), so that one busy client cannot starve the others.
/// 3. Run every task handed over by `execute` since the last iteration (engine completions).
/// 4. Call `onIterationEnd` (the server hands the writes read in steps 2 and 3 to the engine,
///    which may commit them right here: `LoopServer.submitQueuedWrites`).
/// 5. On a tick, call `onTick` (timeouts).
///
/// On `stop`, the loop ends after running every task queued until then, and every task those
/// queue in turn (shutdown's `closeAll` must not be left in the queue with sockets still open).
///
/// Confinement: handlers, registrations and the handler table are touched only on the loop's
/// thread. Other threads talk to the loop only through `execute`.
///
/// `@unchecked Sendable`: the only state other threads touch is `tasks` (a Lock) and the eventfd;
/// everything else is confined to the loop's thread as described above (checked by
/// `assertOnLoop` in debug builds).
final class EventLoop: @unchecked Sendable {
    static let tickInterval: Duration = .milliseconds(250)

    let index: Int
    private let epoll: Int32
    private let wakeDescriptor: Int32
    private var handlers: [Int32: any EventLoopHandler] = [:]
    private let tasks = Lock<(queue: [@Sendable () -> Void], wakePending: Bool)>(([], false))
    private let thread = Lock<pthread_t?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// Iterations run so far: a handler's "turn" is one iteration (`HTTPConnection`'s budget).
    private(set) var iteration: UInt64 = 0
    /// Handlers to call in step 2b of the next iteration, and those of the current one.
    private var continuing: [any EventLoopHandler] = []
    private var continuingNow: [any EventLoopHandler] = []
    /// Called on every tick, on the loop's thread.
    var onTick: (() -> Void)?
    /// Called at the end of every iteration (step 4), on the loop's thread.
    var onIterationEnd: (() -> Void)?

    init(index: Int) throws(ServerError) {
        self.index = index
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .eventLoop(operation: "epoll_create1", errno: errno) }
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeDescriptor >= 0 else {
            let code = errno
            close(epoll)
            throw .eventLoop(operation: "eventfd", errno: code)
        }
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_ADD, wakeDescriptor, EPOLLIN.rawValue, UInt64(wakeDescriptor)) == 0 else {
            let code = errno
            close(wakeDescriptor)
            close(epoll)
            throw .eventLoop(operation: "epoll_ctl", errno: code)
        }
    }

    deinit {
        close(wakeDescriptor)
        close(epoll)
    }

    /// Starts the loop on a thread of its own. `ended` runs on that thread when the loop stops.
    func start(ended: @escaping @Sendable () -> Void) {
        startDetachedThread { [self] in
            thread.withLock { $0 = pthread_self() }
            run()
            ended()
        }
    }

    /// Whether the caller is on this loop's thread.
    var isOnLoop: Bool {
        guard let owner = thread.withLock({ $0 }) else { return false }
        return pthread_equal(owner, pthread_self()) != 0
    }

    func assertOnLoop() {
        assert(isOnLoop, "called off event loop \(index)")
    }

    /// Runs `task` on the loop's thread soon. Safe from any thread; never blocks.
    func execute(_ task: @escaping @Sendable () -> Void) {
        let needsWake = tasks.withLock { tasks in
            tasks.queue.append(task)
            guard !tasks.wakePending else { return false }
            tasks.wakePending = true
            return true
        }
        if needsWake {
            var one: UInt64 = 1
            _ = write(wakeDescriptor, &one, 8)
        }
    }

    /// Tasks queued by `execute` and not yet taken by the loop (tests: to see that a shutdown's
    /// tasks are queued while they hold the loop still).
    var queuedTaskCount: Int { tasks.withLock { $0.queue.count } }

    /// Asks the loop to end after its current iteration. Safe from any thread.
    func stop() {
        stopped.store(true, ordering: .releasing)
        execute {}
    }

    // MARK: On the loop's thread

    /// Registers `descriptor`; on failure returns the errno (nothing is registered).
    func register(_ descriptor: Int32, events: UInt32, handler: any EventLoopHandler) -> Int32? {
        assertOnLoop()
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, events, UInt64(descriptor)) == 0 else { return errno }
        handlers[descriptor] = handler
        return nil
    }

    /// Changes the events watched for `descriptor`; on failure returns the errno (the old events
    /// stay watched, so the caller must not go on as if the change were made).
    func modify(_ descriptor: Int32, events: UInt32) -> Int32? {
        assertOnLoop()
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_MOD, descriptor, events, UInt64(descriptor)) == 0 else { return errno }
        return nil
    }

    /// Calls `handler.continueWork()` in the next iteration (step 2b). Once per call: a handler
    /// asks at most once per iteration (`HTTPConnection` keeps track).
    func continueNextIteration(_ handler: any EventLoopHandler) {
        assertOnLoop()
        continuing.append(handler)
    }

    /// Removes `descriptor` from the loop (before the caller closes it).
    func deregister(_ descriptor: Int32) {
        assertOnLoop()
        _ = small_db_epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, 0, 0)
        handlers[descriptor] = nil
    }

    private func run() {
        var ready = [small_db_ready_event](repeating: small_db_ready_event(), count: 256)
        var lastTick = ContinuousClock.now
        while !stopped.load(ordering: .acquiring) {
            iteration &+= 1
            // Step 1.
            let timeout: Int32 = continuing.isEmpty ? 250 : 0
            let count = ready.withUnsafeMutableBufferPointer { buffer in
                small_db_epoll_wait(epoll, buffer.baseAddress, Int32(buffer.count), timeout)
            }
            // Step 2.
            if count > 0 {
                for index in 0..<Int(count) {
                    let descriptor = Int32(truncatingIfNeeded: ready[index].data)
                    if descriptor == wakeDescriptor {
                        var value: UInt64 = 0
                        _ = read(wakeDescriptor, &value, 8)
                    } else {
                        handlers[descriptor]?.handleEvents(ready[index].events)
                    }
                }
            }
            // Step 2b.
            if !continuing.isEmpty {
                swap(&continuing, &continuingNow)
                for handler in continuingNow { handler.continueWork() }
                continuingNow.removeAll(keepingCapacity: true)
            }
            // Step 3.
            runQueuedTasks()
            // Step 4.
            onIterationEnd?()
            // Step 5.
            let now = ContinuousClock.now
            if now - lastTick >= EventLoop.tickInterval {
                lastTick = now
                onTick?()
            }
        }
        // Stopped: what was queued before (or by) the stop still runs, until nothing is left.
        while runQueuedTasks() {}
    }

    /// Runs the tasks queued by `execute`; false if there were none.
    @discardableResult
    private func runQueuedTasks() -> Bool {
        let pending = tasks.withLock { tasks in
            tasks.wakePending = false
            let queue = tasks.queue
            tasks.queue.removeAll(keepingCapacity: true)
            return queue
        }
        for task in pending { task() }
        return !pending.isEmpty
    }
}
