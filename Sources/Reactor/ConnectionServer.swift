import Dispatch
import Platform

/// A TCP server for one protocol front: event loops (one per core by default), all watching
/// one listening socket, each owning the connections placed on it (`LoopConnections`), every
/// connection living by one `ConnectionPolicy`.
///
/// Graceful shutdown, in order:
/// 1. Every loop stops watching the listening socket; then it is closed: no new connections.
/// 2. Every connection stops reading, answers what it has read, then closes; idle connections
///    close at once.
/// 3. Once no connection is left, or the grace period ends (then the rest are closed), the loops
///    stop, each after running every task queued to it (`EventLoop.stop`).
public final class ConnectionServer: Sendable {
    public let policy: ConnectionPolicy
    public let counters: ConnectionCounters
    private let loopCount: Int
    private let state = Lock<(loops: [EventLoop], parts: [LoopConnections], listener: ListeningSocket?)>(([], [], nil))
    private let loopsEnded = DispatchSemaphore(value: 0)

    public init(loopCount: Int, policy: ConnectionPolicy, counters: ConnectionCounters? = nil) {
        self.loopCount = max(1, loopCount)
        self.policy = policy
        self.counters = counters ?? ConnectionCounters(loopCount: loopCount)
    }

    /// Binds the listening socket and starts the loops, each attaching `front` on its thread.
    public func start(listeningOn address: NetworkAddress, front: any ConnectionFront) throws(ServerStartError) {
        let listener: ListeningSocket
        do throws(ListenError) { listener = try ListeningSocket.open(address) } catch { throw .listen(error) }
        var loops: [EventLoop] = []
        var parts: [LoopConnections] = []
        for index in 0..<loopCount {
            let loop: EventLoop
            do throws(IOError) {
                loop = try EventLoop(index: index)
            } catch {
                listener.close()
                throw .eventLoop(error)
            }
            parts.append(LoopConnections(loop: loop, listener: listener, policy: policy, counters: counters, front: front))
            loops.append(loop)
        }
        for part in parts { part.siblings = parts }
        state.withLock { $0 = (loops, parts, listener) }
        for (loop, part) in zip(loops, parts) {
            loop.start { [loopsEnded] in loopsEnded.signal() }
            loop.execute { part.attach() }
        }
    }

    /// The bound port (after binding port 0). Nil before `start`.
    public var port: UInt16? { state.withLock { $0.listener?.port } }

    /// The event loops (tests hold one still with a task that waits).
    public var loops: [EventLoop] { state.withLock { $0.loops } }

    /// Runs `body` on every loop's thread with the connections that loop owns, and returns
    /// their results (tests: the state of connections; blocks until every loop has answered).
    public func inspectConnections<Result: Sendable>(_ body: @escaping @Sendable ([Connection]) -> Result) -> [Result] {
        let parts = state.withLock { $0.parts }
        let results = Lock<[Int: Result]>([:])
        let done = DispatchSemaphore(value: 0)
        for (index, part) in parts.enumerated() {
            part.loop.execute {
                let result = body(Array(part.connections.values))
                results.withLock { $0[index] = result }
                done.signal()
            }
        }
        for _ in parts { done.wait() }
        return results.withLock { results in (0..<parts.count).map { results[$0]! } }
    }

    /// Steps 1–3 of the shutdown. Blocks until done.
    public func shutdown(gracePeriod: Duration) {
        let (loops, parts, listener) = state.withLock { ($0.loops, $0.parts, $0.listener) }
        // Step 1.
        let released = DispatchSemaphore(value: 0)
        for (loop, part) in zip(loops, parts) {
            loop.execute {
                part.stopAccepting()
                released.signal()
            }
        }
        for _ in loops { released.wait() }
        listener?.close()
        // Step 2.
        let drained = DispatchSemaphore(value: 0)
        for (loop, part) in zip(loops, parts) {
            loop.execute { part.beginShutdown { drained.signal() } }
        }
        // Step 3.
        let deadline = DispatchTime.now() + gracePeriod.dispatchInterval
        var remaining = parts.count
        while remaining > 0, drained.wait(timeout: deadline) == .success { remaining -= 1 }
        for (loop, part) in zip(loops, parts) {
            loop.execute { part.closeAll() }
            loop.stop()
        }
        for _ in loops { loopsEnded.wait() }
        for part in parts { part.siblings = [] }
    }
}

/// Why a `ConnectionServer` could not start.
public enum ServerStartError: Error, Sendable, Equatable, CustomStringConvertible {
    case listen(ListenError)
    case eventLoop(IOError)

    public var description: String {
        switch self {
        case .listen(let error): error.description
        case .eventLoop(let error): "event loop \(error)"
        }
    }
}
