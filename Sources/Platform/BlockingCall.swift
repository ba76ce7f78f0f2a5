import Dispatch
import Synchronization

/// Calls a completion-style API and blocks this thread until it answers: the one bridge from a
/// completion to a blocking call. For threads of their own (replication's sessions, shutdown),
/// never an event loop or Swift's cooperative pool, where blocking would stall other work.
///
/// What must stay true: `call` invokes its completion exactly once, from any thread (on this
/// one too: the semaphore is signalled before it is waited on, which returns at once).
public func blockingCall<Value: Sendable, Failure: Error>(
    _ call: (@escaping @Sendable (Result<Value, Failure>) -> Void) -> Void
) -> Result<Value, Failure> {
    let result = Lock<Result<Value, Failure>?>(nil)
    let done = DispatchSemaphore(value: 0)
    call { outcome in
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }!
}
