#if canImport(Glibc)
import Glibc
#endif

/// Starts `body` on a new, detached OS thread. The engine's long-lived workers (the group
/// committer) and its one-off helpers (the checkpoint verifier) run on threads of their own, never
/// on Swift's cooperative pool, because they block in system calls; and through pthreads rather
/// than Foundation's `Thread`, so that linking the engine does not load Foundation (about 9 MB of
/// resident memory in every process that embeds it). The reactor's event loops and the
/// replication layer's sessions need threads of their own for the same reasons.
public func startDetachedThread(_ body: @escaping @Sendable () -> Void) {
    do throws(ThreadStartError) {
        try tryStartDetachedThread(body)
    } catch {
        preconditionFailure("\(error)")
    }
}

/// `startDetachedThread`, for callers that can refuse the work instead (a server accepting a
/// peer's connection): throws, without running `body`, when pthread_create fails (EAGAIN: the
/// process or the system is out of threads or memory for a stack).
public func tryStartDetachedThread(_ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
    let box = Unmanaged.passRetained(ThreadBody(body))
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
        body.run()
        return nil
    }, box.toOpaque())
    guard result == 0 else {
        box.release()  // the thread that would have taken it never started
        throw ThreadStartError(code: result)
    }
    pthread_detach(thread)
}

/// pthread_create failed; `code` is its error number.
public struct ThreadStartError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public init(code: Int32) { self.code = code }
    public var description: String { "pthread_create failed: \(errnoDescription(code)) (errno \(code))" }
}

/// The closure a new thread runs, boxed to cross `pthread_create`'s untyped argument.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
