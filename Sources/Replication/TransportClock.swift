import Platform

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
