#if canImport(Glibc)
import Glibc
#endif

/// A point in time by which a blocking transport call must return, on the continuous clock (the
/// wall clock may jump; a deadline must not).
struct TransportDeadline {
    let instant: ContinuousClock.Instant

    init(after duration: Duration) {
        instant = ContinuousClock.now.advanced(by: max(duration, .zero))
    }

    /// Nil for nil (no deadline).
    static func after(_ duration: Duration?) -> TransportDeadline? {
        duration.map { TransportDeadline(after: $0) }
    }

    var remaining: Duration { max(.zero, ContinuousClock.now.duration(to: instant)) }

    var hasPassed: Bool { ContinuousClock.now >= instant }

    /// The time left as a poll(2) timeout: milliseconds, rounded up so that a wait never ends
    /// before the deadline, at most Int32.max.
    var pollMilliseconds: Int32 { remaining.pollMilliseconds }
}

extension Duration {
    /// Whole milliseconds, rounded up, clamped to 0…Int32.max (poll's timeout argument).
    var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        guard seconds < Int64(Int32.max / 1000) else { return Int32.max }
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(max(0, milliseconds))
    }
}

/// An absolute CLOCK_MONOTONIC time `duration` from now, for pthread_cond_timedwait.
func monotonicTimespec(after duration: Duration) -> timespec {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let (seconds, attoseconds) = duration.components
    var result = timespec()
    let nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
    result.tv_sec = now.tv_sec + Int(min(seconds, Int64(Int32.max))) + nanoseconds / 1_000_000_000
    result.tv_nsec = nanoseconds % 1_000_000_000
    return result
}
