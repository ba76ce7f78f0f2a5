import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking TCP listening socket, shared by every event loop: each registers it with
/// EPOLLEXCLUSIVE, so the kernel wakes one loop per incoming connection, and whichever loop
/// accepts a connection owns it. (Not SO_REUSEPORT: that would let a second server process bind
/// the same port and silently take half of the connections to another database.)
struct ListeningSocket {
    let descriptor: Int32

    /// Binds and listens on `address`.
    static func open(_ address: ListenAddress, backlog: Int32 = 1024) throws(ServerError) -> ListeningSocket {
        let resolved = try ResolvedAddress.resolve(address)
        let descriptor = socket(resolved.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .socket(operation: "socket", address: address.description, errno: errno) }
        var on: Int32 = 1
        var off: Int32 = 0
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if resolved.family == AF_INET6 {
            // Dual stack: an IPv6 socket on "::" accepts IPv4 connections too, as Go's ":port" does.
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        var storage = resolved.storage
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, resolved.length) }
        }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw .socket(operation: "bind", address: address.description, errno: code)
        }
        guard listen(descriptor, backlog) == 0 else {
            let code = errno
            close(descriptor)
            throw .socket(operation: "listen", address: address.description, errno: code)
        }
        return ListeningSocket(descriptor: descriptor)
    }

    var port: UInt16 { ResolvedAddress.boundPort(of: descriptor) }

    enum AcceptResult {
        case accepted(Int32)
        case noneWaiting
        case failed(Int32)
    }

    /// Accepts one pending connection as a non-blocking socket with TCP_NODELAY.
    func accept() -> AcceptResult {
        let connection = small_db_accept_nonblocking(descriptor)
        guard connection >= 0 else {
            switch errno {
            case EAGAIN, EWOULDBLOCK: return .noneWaiting
            case ECONNABORTED, EINTR, EPROTO: return accept()  // that connection is gone; try the next
            case let code: return .failed(code)
            }
        }
        var on: Int32 = 1
        setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        return .accepted(connection)
    }
}
