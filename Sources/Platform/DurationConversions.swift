public import Dispatch
#if canImport(Glibc)
public import Glibc
#endif

/// Every conversion of a `Duration` to another unit or API the project needs, written once.
/// (`Duration.components` is seconds plus attoseconds; each conversion below says how it
/// rounds and where it saturates, which is where hand-written copies used to differ.)
extension Duration {
    /// Whole nanoseconds, truncated toward zero, saturating at Int's bounds.
    @inlinable
    public var nanoseconds: Int {
        let (seconds, attoseconds) = components
        let saturated = seconds < 0 ? Int.min : Int.max
        let (whole, overflow) = Int(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return saturated }
        let (total, carry) = whole.addingReportingOverflow(Int(attoseconds / 1_000_000_000))
        return carry ? saturated : total
    }

    /// Seconds as a Double (metrics, rates).
    @inlinable
    public var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Milliseconds as a Double (benchmark reports).
    @inlinable
    public var millisecondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
    }

    /// Whole milliseconds, rounded up, clamped to 0…Int32.max: poll(2)'s and epoll_wait(2)'s
    /// timeout argument (rounded up so that a wait never ends before its deadline).
    @inlinable
    public var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        guard seconds < Int64(Int32.max / 1000) else { return Int32.max }
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(max(0, milliseconds))
    }

    /// As Dispatch's interval type: whole nanoseconds, never negative.
    @inlinable
    public var dispatchInterval: DispatchTimeInterval { .nanoseconds(max(0, nanoseconds)) }

    /// "2.007s", "300ms": for log lines (the flags' own syntax, to the millisecond).
    public var logDescription: String {
        let milliseconds = Int((millisecondsValue).rounded())
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let seconds = milliseconds / 1000
        let rest = milliseconds % 1000
        if rest == 0 { return "\(seconds)s" }
        let fraction = String(rest + 1000).dropFirst()  // zero-padded to three digits
        return "\(seconds).\(fraction.reversed().drop(while: { $0 == "0" }).reversed().map(String.init).joined())s"
    }
}

/// An absolute CLOCK_MONOTONIC time `duration` from now, for pthread_cond_timedwait (with a
/// condition variable whose clock is CLOCK_MONOTONIC).
public func monotonicTimespec(after duration: Duration) -> timespec {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let (seconds, attoseconds) = max(duration, .zero).components
    var result = timespec()
    let nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
    result.tv_sec = now.tv_sec + Int(min(seconds, Int64(Int32.max))) + nanoseconds / 1_000_000_000
    result.tv_nsec = nanoseconds % 1_000_000_000
    return result
}
