import Platform
#if canImport(Glibc)
import Glibc
#endif

/// State behind a pthread mutex, with a condition variable to wait for it to change, with or
/// without a deadline: the in-memory transport's blocking receive, send, and accept.
/// (Synchronization's `Mutex` has no condition variable, and a `DispatchSemaphore` cannot
/// broadcast a change to every waiter.)
///
/// `@unchecked Sendable`: `state` is read and written only with `mutex` held (every access goes
/// through `withLock` or `wait`), and the pthread objects live at fixed heap addresses from `init`
/// to `deinit`. The condition waits on CLOCK_MONOTONIC, so a wall-clock jump does not shorten or
/// stretch a timeout.
final class TransportMonitor<State>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let state: UnsafeMutablePointer<State>

    init(_ initial: State) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        state = .allocate(capacity: 1)
        state.initialize(to: initial)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with the state, under the lock. Call `broadcast()` if waiters should look again.
    func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }

    /// Wakes every thread waiting in `wait`, to look at the state again.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }

    /// Runs `attempt` under the lock until it returns a value, waiting for a `broadcast` between
    /// attempts. Nil when `deadline` passes first (nil deadline: waits forever). Each attempt is a
    /// fresh access to the state: nothing of it is held across a wait.
    func wait<Result, Failure: Error>(
        until deadline: TransportDeadline?, _ attempt: (inout State) throws(Failure) -> Result?
    ) throws(Failure) -> Result? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let result = try attempt(&state.pointee) { return result }
            if let deadline {
                if deadline.hasPassed { return nil }
                var wakeAt = monotonicTimespec(after: deadline.remaining)
                pthread_cond_timedwait(condition, mutex, &wakeAt)
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
    }
}
