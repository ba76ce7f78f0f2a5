import Platform
public import StorageEngine
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP+JSON front of a database: one event loop per core, all watching one listening socket,
/// each owning the connections it accepted.
///
/// Graceful shutdown, in order:
/// 1. Every loop stops watching the listening socket; then it is closed: no new connections.
/// 2. Every connection stops reading requests, answers those it has read (writes wait for the
///    engine's durability as always), then closes; idle connections close at once.
/// 3. Once no connection is left, or the grace period ends (then the rest are closed), the loops
///    stop. The caller then closes the database.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    private let database: Database
    private let role: any ServerRole
    private let metrics: ServerMetrics
    private let state = Lock<(loops: [EventLoop], servers: [LoopServer], listener: Int32?, port: UInt16?)>(([], [], nil, nil))
    private let loopsEnded = DispatchSemaphore(value: 0)

    public init(database: Database, role: any ServerRole = StandalonePrimary(), configuration: HTTPServerConfiguration) {
        self.database = database
        self.role = role
        self.configuration = configuration
        self.metrics = ServerMetrics(loopCount: max(1, configuration.eventLoops))
    }

    /// The port the server listens on (useful after binding port 0). Nil before `start`.
    public var port: UInt16? { state.withLock { $0.port } }

    /// Tests only: the event loops, to hold one still (a task that waits) while a test lines up
    /// its clients' bytes.
    var eventLoopsForTesting: [EventLoop] { state.withLock { $0.loops } }
    /// Tests only: each loop's server (read their state on their loop).
    var loopServersForTesting: [LoopServer] { state.withLock { $0.servers } }

    /// Binds the listening sockets and starts the event loops.
    public func start() throws(ServerError) {
        let loopCount = max(1, configuration.eventLoops)
        var loops: [EventLoop] = []
        var servers: [LoopServer] = []
        let router = Router(database: database, role: role, configuration: configuration, metrics: metrics)
        let listener = try ListeningSocket.open(configuration.address)
        for index in 0..<loopCount {
            let loop = try EventLoop(index: index)
            servers.append(LoopServer(loop: loop, listener: listener, configuration: configuration, metrics: metrics, router: router))
            loops.append(loop)
        }
        for server in servers { server.siblings = servers }
        state.withLock { $0 = (loops, servers, listener.descriptor, listener.port) }
        for (loop, server) in zip(loops, servers) {
            loop.start { [loopsEnded] in loopsEnded.signal() }
            loop.execute { server.attach() }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, closes every
    /// connection and stops the loops (steps 1–3 above). Blocks until done. Does not close the
    /// database.
    public func shutdown(gracePeriod: Duration) {
        let (loops, servers, listener) = state.withLock { ($0.loops, $0.servers, $0.listener) }
        // Step 1.
        let released = DispatchSemaphore(value: 0)
        for (loop, server) in zip(loops, servers) {
            loop.execute {
                server.stopAccepting()
                released.signal()
            }
        }
        for _ in loops { released.wait() }
        if let listener { close(listener) }
        // Step 2.
        let drained = DispatchSemaphore(value: 0)
        for (loop, server) in zip(loops, servers) {
            loop.execute { server.beginShutdown { drained.signal() } }
        }
        // Step 3.
        let deadline = DispatchTime.now() + gracePeriod.dispatchInterval
        var remaining = servers.count
        while remaining > 0, drained.wait(timeout: deadline) == .success { remaining -= 1 }
        for (loop, server) in zip(loops, servers) {
            loop.execute { server.closeAll() }
            loop.stop()
        }
        for _ in loops { loopsEnded.wait() }
        for server in servers { server.siblings = [] }
    }
}
