#if canImport(Glibc)
import Glibc
#endif

/// Starts `body` on a new, detached OS thread. The engine's long-lived workers (the group
/// committer) and its one-off helpers (the checkpoint verifier) run on threads of their own, never
/// on Swift's cooperative pool, because they block in system calls; and through pthreads rather
/// than Foundation's `Thread`, so that linking the engine does not load Foundation (about 9 MB of
/// resident memory in every process that embeds it). Public for the HTTP front's event loops,
/// which need threads of their own for the same reasons.
public func startDetachedThread(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
        body.run()
        return nil
    }, box)
    precondition(result == 0, "pthread_create failed: \(result)")
    pthread_detach(thread)
}

/// The closure a new thread runs, boxed to cross `pthread_create`'s untyped argument.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
