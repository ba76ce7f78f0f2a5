import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Tests only: the next `count` epoll registrations (or modifications) that consult it fail with
/// `errno` (`ConnectionPolicy.listenerWatchFaults`, `.connectionWatchFaults`), as epoll_ctl fails when the user's epoll watch limit is reached (ENOSPC) or the
/// kernel is out of memory (ENOMEM).
package final class RegistrationFaults: Sendable {
    private let remaining: Atomic<Int>
    private let errno: Int32

    package init(count: Int, errno: Int32 = ENOSPC) {
        remaining = Atomic(count)
        self.errno = errno
    }

    /// The errno of an injected failure, or nil when none is left.
    package func take() -> Int32? {
        var current = remaining.load(ordering: .relaxed)
        while current > 0 {
            let (exchanged, original) = remaining.compareExchange(expected: current, desired: current - 1, ordering: .relaxed)
            if exchanged { return errno }
            current = original
        }
        return nil
    }
}
