import Platform
import Reactor
import Synchronization

/// A socket file descriptor shared by threads, closed only when no thread is using it.
///
/// The danger it removes: if one thread closed a descriptor while another was blocked in poll or
/// recv on it, the number could be reused by an unrelated open (a log file, say) and the blocked
/// thread would then read or write that instead. So:
/// - every system call on the descriptor happens inside `use`, which counts the thread in;
/// - `close()` marks it closed and shuts the socket down (shutdown(2) wakes a thread blocked in
///   poll, recv, send or accept on it, which then sees `isClosed`), but calls close(2) only when
///   no thread is inside `use`; otherwise the last thread to leave closes it.
/// After `close()`, `use` throws `.closed` without touching the descriptor.
final class TransportDescriptor: Sendable {
    private struct State {
        var descriptor: Int32
        var users = 0
        var closed = false
    }

    private let state: Lock<State>
    private let closedFlag = Atomic<Bool>(false)

    init(_ descriptor: Int32) {
        state = Lock(State(descriptor: descriptor))
    }

    deinit {
        // No thread can be inside `use` (it holds a reference): only a never-closed descriptor is left.
        let descriptor = state.withLock { $0.descriptor }
        if descriptor >= 0 { SocketIO.close(descriptor) }
    }

    /// True once `close()` was called (a cheap check for loops between system calls).
    var isClosed: Bool { closedFlag.load(ordering: .acquiring) }

    /// Runs `body` with the descriptor, which stays open until `body` returns. Throws `.closed`
    /// after `close()`.
    func use<Result>(_ body: (Int32) throws(TransportError) -> Result) throws(TransportError) -> Result {
        let descriptor = try state.withLock { (state) throws(TransportError) -> Int32 in
            guard !state.closed else { throw .closed }
            state.users += 1
            return state.descriptor
        }
        defer {
            let toClose = state.withLock { state -> Int32 in
                state.users -= 1
                guard state.closed, state.users == 0, state.descriptor >= 0 else { return -1 }
                defer { state.descriptor = -1 }
                return state.descriptor
            }
            if toClose >= 0 { SocketIO.close(toClose) }
        }
        return try body(descriptor)
    }

    /// Shuts the socket down, waking its users, and closes it as soon as none is left. Idempotent.
    func close() {
        let toClose = state.withLock { state -> Int32 in
            guard !state.closed else { return -1 }
            state.closed = true
            closedFlag.store(true, ordering: .releasing)
            // Under the lock: the last user cannot close the descriptor between these two lines.
            SocketIO.shutdownBoth(state.descriptor)
            guard state.users == 0 else { return -1 }
            defer { state.descriptor = -1 }
            return state.descriptor
        }
        if toClose >= 0 { SocketIO.close(toClose) }
    }
}
