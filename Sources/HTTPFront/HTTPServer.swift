import Platform
public import Reactor
public import StorageEngine

/// The HTTP+JSON front of a database: the reactor's `ConnectionServer` (one event loop per
/// core, all watching one listening socket, each owning the connections placed on it) with HTTP
/// as its protocol (`HTTPConnectionFront`).
///
/// Graceful shutdown (`ConnectionServer.shutdown`), in order:
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
    private let connections: ConnectionServer
    private let front = Lock<HTTPConnectionFront?>(nil)

    public init(database: Database, role: any ServerRole = StandalonePrimary(), configuration: HTTPServerConfiguration) {
        self.database = database
        self.role = role
        self.configuration = configuration
        let loopCount = max(1, configuration.eventLoops)
        self.metrics = ServerMetrics(loopCount: loopCount)
        self.connections = ConnectionServer(loopCount: loopCount, policy: configuration.connectionPolicy, counters: metrics.connections)
    }

    /// The port the server listens on (useful after binding port 0). Nil before `start`.
    public var port: UInt16? { connections.port }

    /// Tests only: the event loops, to hold one still (a task that waits) while a test lines up
    /// its clients' bytes.
    var eventLoopsForTesting: [EventLoop] { connections.loops }

    /// Tests only: `HTTPConnection.builtAnswerBytes` summed over every connection (blocks until
    /// every loop has answered).
    var builtAnswerBytesForTesting: Int {
        connections.inspectConnections { open in
            open.reduce(0) { $0 + (($1.handler as? HTTPConnection)?.builtAnswerBytes ?? 0) }
        }.reduce(0, +)
    }

    /// Binds the listening socket and starts the event loops.
    public func start() throws(ServerStartError) {
        let loopCount = max(1, configuration.eventLoops)
        let router = Router(database: database, role: role, configuration: configuration, metrics: metrics)
        let front = HTTPConnectionFront(configuration: configuration, metrics: metrics, router: router, loopCount: loopCount)
        self.front.withLock { $0 = front }
        try connections.start(listeningOn: configuration.address, front: front)
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, closes every
    /// connection and stops the loops (steps 1–3 above). Blocks until done. Does not close the
    /// database.
    public func shutdown(gracePeriod: Duration) {
        connections.shutdown(gracePeriod: gracePeriod)
        front.withLock { $0 }?.stopPipelines()
    }
}
