public import StorageEngine
public import WireProtocol

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
    /// Connections beyond this are answered 503 and closed at once.
    public var maxConnections = 4096
    /// If set, every route but /v1/health needs `Authorization: Bearer <token>`.
    public var authToken: [UInt8]?
    /// Receives one line per notable event.
    public var log: (@Sendable (LogLevel, String) -> Void)?

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
