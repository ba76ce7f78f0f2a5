import Platform
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which one, and the errno it left. The reactor's one error type for
/// sockets and epoll, so that no file outside the reactor reads `errno` or compares it with
/// EAGAIN: the outcome types (`ReadOutcome`, `WriteOutcome`, `AcceptOutcome`) name the cases
/// callers act on, and everything else is an `IOError` to report.
public struct IOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The system call, as the log line names it ("epoll_ctl", "accept", "bind [::]:8080").
    public let operation: String
    public let code: Int32

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// The error the last failed system call on this thread left in errno.
    static func last(_ operation: String) -> IOError { IOError(operation, code: errno) }

    public var description: String { "\(operation) failed: \(errnoDescription(code)) (errno \(code))" }

    /// The errno's own text ("No space left on device"), for log lines that say the operation
    /// themselves.
    public var reason: String { "\(errnoDescription(code)) (errno \(code))" }

    /// The address family is not supported (no IPv6 in this kernel or namespace).
    var isFamilyUnsupported: Bool { code == EAFNOSUPPORT || code == EPROTONOSUPPORT }
}

/// errno values that the reactor's outcome types turn into cases, named once.
enum Errno {
    static var current: Int32 { errno }
    static func isInterrupted(_ code: Int32) -> Bool { code == EINTR }
    static func isWouldBlock(_ code: Int32) -> Bool { code == EAGAIN || code == EWOULDBLOCK }
    /// The peer reset or abandoned the connection: not a fault of ours to log.
    static func isPeerGone(_ code: Int32) -> Bool { code == EPIPE || code == ECONNRESET }
}
