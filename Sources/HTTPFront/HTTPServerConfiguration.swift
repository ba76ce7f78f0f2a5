public import Reactor
public import StorageEngine
public import WireProtocol

/// How the HTTP front runs. Defaults are what `small_db_server` uses (docs/OPERATIONS.md).
public struct HTTPServerConfiguration: Sendable {
    /// Where to listen (the -addr flag; default ":8080").
    public var address = NetworkAddress(host: "", port: 8080)
    /// Event loops, each a thread with its own epoll, sharing the listening socket. Default: one
    /// per core this process may run on.
    public var eventLoops = HTTPServerConfiguration.coreCount
    /// Request size limits. The request line allows any key up to the engine's 4 KiB limit fully
    /// percent-encoded (12 KiB); the body allows the largest value (16 MiB) in base64 in JSON.
    public var limits: HTTPLimits = {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 16 << 10
        limits.maxBodyBytes = 24 << 20
        return limits
    }()
    /// A client must send a whole request (head and body) within this time of its first byte.
    public var requestReadTimeout: Duration = .seconds(10)
    /// A keep-alive connection with nothing in flight is closed after this long.
    public var idleTimeout: Duration = .seconds(120)
    /// A connection with answers waiting to be sent is closed when the client has taken none of
    /// their bytes for this long (a client that sends requests but never reads them would
    /// otherwise hold its answers forever). `.zero`: never.
    public var writeTimeout: Duration = .seconds(30)
    /// Connections beyond this are answered 503 and closed at once.
    public var maxConnections = 4096
    /// If set, every route but /v1/health and /v1/writable needs `Authorization: Bearer <token>`.
    public var authToken: [UInt8]?
    /// Receives one line per notable event.
    public var log: (@Sendable (LogLevel, String) -> Void)?

    /// Tests only: makes the listener's epoll registrations fail (`LoopConnections.watchListener`).
    var listenerWatchFaults: RegistrationFaults?
    /// Tests only: makes changes of a connection's watched events fail (`Connection.changeInterest`).
    var connectionWatchFaults: RegistrationFaults?

    public init() {}

    /// Answers waiting for one client (unanswered requests, in slots or unsent) at which its
    /// connection stops reading: pipelining's bound.
    static let maxPendingResponses = 64
    /// Answer bytes held for one client, built or not, at which its connection stops reading.
    static let maxBufferedOutput = 4 << 20
    /// One read's size, and so the most bytes a read adds beyond a partial request.
    static let readChunk = 64 << 10

    /// The reactor's rules for HTTP connections: these limits and timeouts, and the fairness
    /// budget (64 requests and four reads per connection per loop iteration).
    var connectionPolicy: ConnectionPolicy {
        var policy = ConnectionPolicy()
        policy.maxConnections = maxConnections
        policy.maxPendingMessages = Self.maxPendingResponses
        policy.maxBufferedOutput = Self.maxBufferedOutput
        policy.readChunk = Self.readChunk
        policy.maxMessagesPerTurn = 64
        policy.maxReadBytesPerTurn = 4 * Self.readChunk
        policy.messageReadTimeout = requestReadTimeout
        policy.idleTimeout = idleTimeout
        policy.writeTimeout = writeTimeout
        policy.lingerTime = .seconds(2)
        if let log { policy.log = { log(.error, $0) } }
        policy.listenerWatchFaults = listenerWatchFaults
        policy.connectionWatchFaults = connectionWatchFaults
        return policy
    }

    /// The cores this process may run on: its CPU affinity (`taskset`, a container's cpuset),
    /// or every online core if that cannot be read.
    public static var coreCount: Int { usableCoreCount() }
}
