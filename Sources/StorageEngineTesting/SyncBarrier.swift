import Dispatch
import Platform

/// Holds log syncs until released (`FaultInjectingStore.FaultEffect.hold`): a test stops a
/// commit round at its fdatasync, looks at what is visible and answered meanwhile, then lets it
/// go on.
public final class SyncBarrier: Sendable, Hashable {
    private let arrivals = Lock(0)
    private let released = DispatchSemaphore(value: 0)

    public init() {}

    /// Syncs that have reached the barrier so far.
    public var arrived: Int { arrivals.withLock { $0 } }

    /// Lets every held sync, and every later one, go on.
    public func release() { released.signal() }

    func wait() {
        arrivals.withLock { $0 += 1 }
        released.wait()
        released.signal()  // the next sync held by this barrier goes through too
    }

    public static func == (lhs: SyncBarrier, rhs: SyncBarrier) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
