import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached thread running the closure, or throws (running nothing): how a layer that
/// must survive running out of threads makes them, replaceable in tests to simulate that.
public typealias ThreadStarter = @Sendable (@escaping @Sendable () -> Void) throws(ThreadStartError) -> Void

/// A thread that can be waited for: `init` runs `body` on a new thread, `join` blocks until it
/// has returned. `init` throws when no thread can be made (the caller refuses the work: it never
/// traps).
public final class JoinableThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private let identity = Lock<pthread_t?>(nil)
    private let hasFinished = Atomic<Bool>(false)

    public init(starter: ThreadStarter = tryStartDetachedThread, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
        try starter { [self] in
            identity.withLock { $0 = pthread_self() }
            body()
            hasFinished.store(true, ordering: .releasing)
            finished.signal()
        }
    }

    /// The body has returned (joining would not wait).
    public var isFinished: Bool { hasFinished.load(ordering: .acquiring) }

    /// Whether the caller runs on this thread (which must not join itself).
    public var isCurrent: Bool {
        guard let id = identity.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    /// Blocks until the body has returned. Any number of threads may join, any number of times.
    public func join() {
        finished.wait()
        finished.signal()  // later joins return at once
    }
}
