import Dispatch
import Platform
import Synchronization
import StorageEngine
#if canImport(Glibc)
import Glibc
#endif

/// Calls a completion-style engine API and blocks this thread until it answers. The replication
/// layer runs on threads of its own (never an event loop or Swift's cooperative pool), where
/// blocking is the simplest correct way to keep a stream's steps in order.
func blockingCall<T: Sendable>(
    _ call: (@escaping @Sendable (Result<T, DatabaseError>) -> Void) -> Void
) -> Result<T, DatabaseError> {
    let result = Lock<Result<T, DatabaseError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    call { outcome in
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }!
}

/// Starts a detached thread running the closure, or throws (running nothing): the replication
/// layer's way to make threads, replaceable in tests to simulate a process out of threads.
typealias ThreadStarter = @Sendable (@escaping @Sendable () -> Void) throws(ThreadStartError) -> Void

/// A thread that can be waited for: `init` runs `body` on a new thread, `join` blocks until it
/// has returned. `init` throws when no thread can be made (the caller refuses the work: it never
/// traps).
final class JoinableThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private let identity = Lock<pthread_t?>(nil)
    private let hasFinished = Atomic<Bool>(false)

    init(starter: ThreadStarter = tryStartDetachedThread, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
        try starter { [self] in
            identity.withLock { $0 = pthread_self() }
            body()
            hasFinished.store(true, ordering: .releasing)
            finished.signal()
        }
    }

    /// The body has returned (joining would not wait).
    var isFinished: Bool { hasFinished.load(ordering: .acquiring) }

    /// Whether the caller runs on this thread (which must not join itself).
    var isCurrent: Bool {
        guard let id = identity.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    func join() {
        finished.wait()
        finished.signal()  // later joins return at once
    }
}

/// Why a replication step failed: a sentence for the log line that reports it.
struct ReplicationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps the closure's typed error (the standard one is `rethrows`).
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

extension Duration {
    /// "2.007s", "300ms": for log lines (the flags' own syntax, to the millisecond).
    var logDescription: String {
        let milliseconds = Int((Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15).rounded())
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let seconds = milliseconds / 1000
        let rest = milliseconds % 1000
        if rest == 0 { return "\(seconds)s" }
        let fraction = String(rest + 1000).dropFirst()  // zero-padded to three digits
        return "\(seconds).\(fraction.reversed().drop(while: { $0 == "0" }).reversed().map(String.init).joined())s"
    }
}

extension String {
    /// A peer's text made safe for one log line: control characters (newlines included) become
    /// "?", so a hostile peer cannot forge log lines.
    var sanitizedForLog: String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
