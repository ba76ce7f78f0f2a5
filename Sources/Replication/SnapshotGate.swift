import Platform

/// How often a primary may make a snapshot for a backup: each one writes a checkpoint (a full
/// copy of the data), and a peer could otherwise ask for one per connection.
///
/// What must stay true: at most one snapshot at a time; two starts at least `minimumInterval`
/// apart. A backup refused here is told when to retry (it retries by itself).
final class SnapshotGate: Sendable {
    let minimumInterval: Duration
    private struct State {
        var inFlight = false
        var lastStart: ContinuousClock.Instant?
    }
    private let state = Lock(State())

    init(minimumInterval: Duration) {
        self.minimumInterval = minimumInterval
    }

    /// Claims the right to make one snapshot now; nil once claimed (call `release` when it is
    /// sent or failed), else why not, for the refusal.
    func claim(now: ContinuousClock.Instant = .now) -> String? {
        state.withLock { state -> String? in
            if state.inFlight { return "another snapshot is being sent; retry once it is done" }
            if let lastStart = state.lastStart, now - lastStart < minimumInterval {
                let wait = minimumInterval - (now - lastStart)
                return "a snapshot was started \((now - lastStart).logDescription) ago; the next may start in \(wait.logDescription) (-repl-snapshot-interval)"
            }
            state.inFlight = true
            state.lastStart = now
            return nil
        }
    }

    func release() {
        state.withLock { state in
            assert(state.inFlight, "releasing a snapshot that was never claimed")
            state.inFlight = false
        }
    }
}
