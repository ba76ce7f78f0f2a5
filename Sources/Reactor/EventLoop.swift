import CLinuxShims
import Platform
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread, one epoll instance, and the registrations made with it.
///
/// The loop's protocol, per iteration:
/// 1. Wait in epoll_wait for ready registrations, for the eventfd that `execute` writes, or for
///    the tick (`tickInterval`). If a handler left work for this iteration (step 2b), do not
///    wait: poll.
/// 2. Call each ready registration's handler (looked up by the registration's id, so an event
///    for a descriptor closed earlier in this iteration reaches nobody).
///    2b. Call `continueWork` of each handler that asked in the previous iteration
///    (`continueNextIteration`): a connection that used its turn's share of work, so that one
///    busy client cannot starve the others.
/// 3. Run every task handed over by `execute` since the last iteration (engine completions).
/// 4. Run the iteration-end hooks, in the order they were added (a front hands the writes read
///    in steps 2 and 3 to its engine as one group: `IterationBatch`).
/// 5. On a tick, run the tick hooks (timeouts, retries).
///
/// On `stop`, the loop ends after running every task queued until then, and every task those
/// queue in turn (a shutdown's `closeAll` must not be left in the queue with sockets still open).
///
/// Confinement: handlers, registrations, hooks and the handler table are touched only on the
/// loop's thread. Other threads talk to the loop only through `execute` and `stop`.
///
/// `@unchecked Sendable`: the only state other threads touch is `tasks` (a Lock), `stopped` (an
/// atomic) and the eventfd; everything else is confined to the loop's thread as described above
/// (checked by `assertOnLoop` in debug builds).
public final class EventLoop: @unchecked Sendable {
    public static let tickInterval: Duration = .milliseconds(250)

    public let index: Int
    private let epoll: Int32
    private let wakeDescriptor: Int32
    private var handlers: [UInt64: any EventLoopHandler] = [:]
    private var nextRegistrationID: UInt64 = 1
    private let tasks = Lock<(queue: [@Sendable () -> Void], wakePending: Bool)>(([], false))
    private let thread = Lock<pthread_t?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// Iterations run so far: a handler's "turn" is one iteration.
    public private(set) var iteration: UInt64 = 0
    /// When the current iteration's wait ended: the clock for timeouts, read once per
    /// iteration rather than once per read and write (connections' activity times).
    public private(set) var now = ContinuousClock.now
    /// Handlers to call in step 2b of the next iteration, and those of the current one.
    private var continuing: [any EventLoopHandler] = []
    private var continuingNow: [any EventLoopHandler] = []
    private var iterationEndHooks: [() -> Void] = []
    private var tickHooks: [() -> Void] = []

    /// Makes the epoll instance and the wake-up eventfd; the thread starts with `start`.
    public init(index: Int) throws(IOError) {
        self.index = index
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .last("epoll_create1") }
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeDescriptor >= 0 else {
            let failure = IOError.last("eventfd")
            close(epoll)
            throw failure
        }
        // The eventfd's registration id is 0, which no other registration gets.
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_ADD, wakeDescriptor, EpollEvents.readable.rawValue, 0) == 0 else {
            let failure = IOError.last("epoll_ctl")
            close(wakeDescriptor)
            close(epoll)
            throw failure
        }
    }

    deinit {
        close(wakeDescriptor)
        close(epoll)
    }

    /// Starts the loop on a thread of its own. `ended` runs on that thread when the loop stops.
    public func start(ended: @escaping @Sendable () -> Void) {
        startDetachedThread { [self] in
            thread.withLock { $0 = pthread_self() }
            run()
            ended()
        }
    }

    /// Whether the caller is on this loop's thread.
    public var isOnLoop: Bool {
        guard let owner = thread.withLock({ $0 }) else { return false }
        return pthread_equal(owner, pthread_self()) != 0
    }

    public func assertOnLoop() {
        assert(isOnLoop, "called off event loop \(index)")
    }

    /// Runs `task` on the loop's thread soon. Safe from any thread; never blocks.
    public func execute(_ task: @escaping @Sendable () -> Void) {
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
    public var queuedTaskCount: Int { tasks.withLock { $0.queue.count } }

    /// Asks the loop to end after its current iteration, once every task queued by then (and
    /// by those) has run. Safe from any thread.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        execute {}
    }

    // MARK: On the loop's thread

    /// Registers `descriptor` for `events`; throws (registering nothing) if epoll refuses.
    public func register(_ descriptor: Int32, events: EpollEvents, handler: any EventLoopHandler) throws(IOError) -> Registration {
        assertOnLoop()
        let id = nextRegistrationID
        nextRegistrationID += 1
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, events.rawValue, id) == 0 else { throw .last("epoll_ctl") }
        handlers[id] = handler
        return Registration(descriptor: descriptor, id: id)
    }

    /// Changes the events watched; throws if epoll refuses, and then the old events stay
    /// watched, so the caller must not go on as if the change were made.
    public func modify(_ registration: Registration, events: EpollEvents) throws(IOError) {
        assertOnLoop()
        guard small_db_epoll_ctl(epoll, EPOLL_CTL_MOD, registration.descriptor, events.rawValue, registration.id) == 0 else {
            throw .last("epoll_ctl")
        }
    }

    /// Removes the registration (before the caller closes its descriptor). Its handler gets no
    /// further events, not even ones already reported in this iteration.
    public func deregister(_ registration: Registration) {
        assertOnLoop()
        _ = small_db_epoll_ctl(epoll, EPOLL_CTL_DEL, registration.descriptor, 0, 0)
        handlers[registration.id] = nil
    }

    /// Calls `handler.continueWork()` in the next iteration (step 2b). Once per call: a handler
    /// asks at most once per iteration (`Connection` keeps track).
    public func continueNextIteration(_ handler: any EventLoopHandler) {
        assertOnLoop()
        continuing.append(handler)
    }

    /// Adds a hook run at the end of every iteration (step 4), for as long as the loop runs.
    public func addIterationEndHook(_ hook: @escaping () -> Void) {
        assertOnLoop()
        iterationEndHooks.append(hook)
    }

    /// Adds a hook run on every tick (step 5), for as long as the loop runs.
    public func addTickHook(_ hook: @escaping () -> Void) {
        assertOnLoop()
        tickHooks.append(hook)
    }

    private func run() {
        var ready = [small_db_ready_event](repeating: small_db_ready_event(), count: 256)
        var lastTick = ContinuousClock.now
        let tickMilliseconds = EventLoop.tickInterval.pollMilliseconds
        while !stopped.load(ordering: .acquiring) {
            iteration &+= 1
            // Step 1.
            let timeout: Int32 = continuing.isEmpty ? tickMilliseconds : 0
            let count = ready.withUnsafeMutableBufferPointer { buffer in
                small_db_epoll_wait(epoll, buffer.baseAddress, Int32(buffer.count), timeout)
            }
            now = .now
            // Step 2.
            if count > 0 {
                for index in 0..<Int(count) {
                    let id = ready[index].data
                    if id == 0 {
                        var value: UInt64 = 0
                        _ = read(wakeDescriptor, &value, 8)
                    } else {
                        handlers[id]?.handleEvents(EpollEvents(rawValue: ready[index].events))
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
            for hook in iterationEndHooks { hook() }
            // Step 5.
            if now - lastTick >= EventLoop.tickInterval {
                lastTick = now
                for hook in tickHooks { hook() }
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
