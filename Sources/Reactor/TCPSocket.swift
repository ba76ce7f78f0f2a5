import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// Opening TCP sockets and setting their options: every socket the project makes is
/// non-blocking and close-on-exec, and every connection has TCP_NODELAY (answers and frames are
/// whole messages: Nagle's algorithm would only delay them).
public enum TCPSocket {
    /// Makes a socket of an address family; `ListeningSocket` takes another opener in tests (to
    /// simulate a machine whose IPv6 sockets fail to open).
    package typealias Opener = (_ family: Int32) throws(IOError) -> Int32

    package static func open(family: Int32) throws(IOError) -> Int32 {
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .last("socket") }
        return descriptor
    }

    /// Sends small writes at once (TCP_NODELAY).
    public static func disableNagle(_ descriptor: Int32) {
        var on: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Opens a socket, binds it to `address` and listens. SO_REUSEADDR, so that a restarted
    /// server can bind while old connections linger in TIME_WAIT; on IPv6, dual stack.
    static func listen(on address: SocketAddress, backlog: Int32, opener: Opener) throws(IOError) -> Int32 {
        let descriptor = try opener(address.family)
        var on: Int32 = 1
        var off: Int32 = 0
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if address.family == AF_INET6 {
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        do throws(IOError) {
            try address.withSockaddr { (raw, length) throws(IOError) in
                guard bind(descriptor, raw, length) == 0 else { throw .last("bind") }
            }
            guard Glibc.listen(descriptor, backlog) == 0 else { throw .last("listen") }
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Connects to `address`, waiting at most until `deadline` (poll on the non-blocking
    /// connect). Returns the connected socket, with TCP_NODELAY.
    public static func connect(to address: SocketAddress, deadline: ContinuousClock.Instant) throws(DialError) -> Int32 {
        let descriptor: Int32
        do throws(IOError) { descriptor = try open(family: address.family) } catch { throw .failed(error) }
        var connected = false
        defer { if !connected { close(descriptor) } }
        let started: Int32
        do throws(IOError) {
            started = try address.withSockaddr { (raw, length) throws(IOError) in Glibc.connect(descriptor, raw, length) }
        } catch {
            throw .failed(error)
        }
        if started != 0 {
            let code = Errno.current
            guard code == EINPROGRESS || Errno.isInterrupted(code) else { throw .failed(IOError("connect", code: code)) }
            switch SocketIO.wait(descriptor, for: .writable, until: deadline) {
            case .ready: break
            case .timedOut: throw .timedOut
            case .failed(let error): throw .failed(error)
            }
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &size)
            guard failure == 0 else { throw .failed(IOError("connect", code: failure)) }
        }
        disableNagle(descriptor)
        connected = true
        return descriptor
    }
}

/// Why a dial failed.
public enum DialError: Error, Sendable, Equatable {
    case timedOut
    case failed(IOError)
}
