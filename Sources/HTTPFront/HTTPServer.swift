public import StorageEngine
import Dispatch
import Synchronization

/// The HTTP+JSON front of a database: one event loop per core, each with its own listening socket
/// (SO_REUSEPORT) and its own connections.
///
/// Graceful shutdown, in order:
/// 1. Every loop closes its listening socket: no new connections.
/// 2. Every connection stops reading requests, answers those it has read (writes wait for the
///    engine's durability as always), then closes; idle connections close at once.
/// 3. Once no connection is left, or the grace period ends (then the rest are closed), the loops
///    stop. The caller then closes the database.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    private let database: Database
    private let role: any ServerRole
    private let metrics: ServerMetrics
    private let state = Mutex<(loops: [EventLoop], servers: [LoopServer], port: UInt16?)>(([], [], nil))
    private let loopsEnded = DispatchSemaphore(value: 0)

    public init(database: Database, role: any ServerRole = StandalonePrimary(), configuration: HTTPServerConfiguration) {
        self.database = database
        self.role = role
        self.configuration = configuration
        self.metrics = ServerMetrics(loopCount: max(1, configuration.eventLoops))
    }

    /// The port the server listens on (useful after binding port 0). Nil before `start`.
    public var port: UInt16? { state.withLock { $0.port } }

    /// Binds the listening sockets and starts the event loops.
    public func start() throws(ServerError) {
        let loopCount = max(1, configuration.eventLoops)
        var address = configuration.address
        var loops: [EventLoop] = []
        var servers: [LoopServer] = []
        let router = Router(database: database, role: role, configuration: configuration, metrics: metrics)
        for index in 0..<loopCount {
            let loop = try EventLoop(index: index)
            let listener = try ListeningSocket.open(address)
            if index == 0 { address.port = listener.port }  // the others join the same port
            servers.append(LoopServer(loop: loop, listener: listener, configuration: configuration, metrics: metrics, router: router))
            loops.append(loop)
        }
        state.withLock { $0 = (loops, servers, address.port) }
        for (loop, server) in zip(loops, servers) {
            loop.start { [loopsEnded] in loopsEnded.signal() }
            loop.execute { server.attach() }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, closes every
    /// connection and stops the loops (steps 1–3 above). Blocks until done. Does not close the
    /// database.
    public func shutdown(gracePeriod: Duration) {
        let (loops, servers) = state.withLock { ($0.loops, $0.servers) }
        let drained = DispatchSemaphore(value: 0)
        for (loop, server) in zip(loops, servers) {
            loop.execute { server.beginShutdown { drained.signal() } }
        }
        let deadline = DispatchTime.now() + .nanoseconds(Int(gracePeriod.components.seconds) * 1_000_000_000 + Int(gracePeriod.components.attoseconds / 1_000_000_000))
        var remaining = servers.count
        while remaining > 0, drained.wait(timeout: deadline) == .success { remaining -= 1 }
        for (loop, server) in zip(loops, servers) {
            loop.execute { server.closeAll() }
            loop.stop()
        }
        for _ in loops { loopsEnded.wait() }
    }

    /// The Prometheus page, as GET /metrics serves it.
    public func renderMetrics() -> String {
        metrics.render(engine: database.stats)
    }
}
