public import StorageEngine
public import WireProtocol
import Synchronization

/// How the HTTP front runs. Defaults are what `small_db_server` uses (docs/OPERATIONS.md).
public struct HTTPServerConfiguration: Sendable {
    /// Where to listen (the -addr flag; default ":8080").
    public var address = ListenAddress(host: "", port: 8080)
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

    /// Tests only: makes the listener's epoll registrations fail (`LoopServer.watchListener`).
    var listenerWatchFaults: ListenerWatchFaults?
    /// Tests only: makes changes of a connection's watched events fail
    /// (`HTTPConnection.changeInterest`; the same kind of countdown as the listener's).
    var connectionWatchFaults: ListenerWatchFaults?

    public init() {}

    /// The cores this process may run on: its CPU affinity (`taskset`, a container's cpuset),
    /// or every online core if that cannot be read.
    public static var coreCount: Int {
        let usable = Int(small_db_usable_cpu_count())
        return max(1, usable > 0 ? usable : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// Tests only: the next `count` registrations of the listening socket fail with `errno`, as
/// epoll_ctl fails when the user's epoll watch limit is reached.
final class ListenerWatchFaults: Sendable {
    private let remaining: Atomic<Int>
    private let errno: Int32

    init(count: Int, errno: Int32 = ENOSPC) {
        remaining = Atomic(count)
        self.errno = errno
    }

    /// The errno of an injected failure, or nil when none is left.
    func take() -> Int32? {
        var current = remaining.load(ordering: .relaxed)
        while current > 0 {
            let (exchanged, original) = remaining.compareExchange(expected: current, desired: current - 1, ordering: .relaxed)
            if exchanged { return errno }
            current = original
        }
        return nil
    }
}
