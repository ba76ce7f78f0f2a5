import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking TCP listening socket.
///
/// Opening tries the addresses `AddressResolver` gives, in order, and keeps the first that
/// binds; an address that cannot be used moves on to the next (IPv6's "::" to IPv4's
/// "0.0.0.0" where IPv6 sockets fail to open), except when the port itself is refused
/// (EADDRINUSE, EACCES): another family would then serve the port only half.
///
/// Shared by every event loop of a `ConnectionServer`: each registers it with EPOLLEXCLUSIVE,
/// so the kernel wakes one loop per incoming connection. (Not SO_REUSEPORT: that would let a
/// second server process bind the same port and silently take half of the connections to
/// another database.)
public struct ListeningSocket: Sendable {
    public let descriptor: Int32
    /// The address bound (with the kernel's port after binding port 0).
    public let localAddress: SocketAddress

    public static func open(_ address: NetworkAddress, backlog: Int32 = 1024) throws(ListenError) -> ListeningSocket {
        try open(address, backlog: backlog, opener: TCPSocket.open(family:))
    }

    package static func open(_ address: NetworkAddress, backlog: Int32, opener: TCPSocket.Opener) throws(ListenError) -> ListeningSocket {
        let candidates: [SocketAddress]
        do throws(AddressError) {
            candidates = try AddressResolver.resolve(address, forListening: true)
        } catch {
            throw .address(error)
        }
        var lastFailure: IOError?
        for candidate in candidates {
            do throws(IOError) {
                let descriptor = try TCPSocket.listen(on: candidate, backlog: backlog, opener: opener)
                return ListeningSocket(descriptor: descriptor, localAddress: SocketAddress(of: descriptor, peer: false) ?? candidate)
            } catch {
                lastFailure = error
                if error.code == EADDRINUSE || error.code == EACCES { break }
            }
        }
        throw .system(lastFailure!, address: address.description)
    }

    /// The bound port.
    public var port: UInt16 { localAddress.port }

    public enum AcceptOutcome: Equatable {
        /// A connection, non-blocking and close-on-exec, with TCP_NODELAY.
        case accepted(Int32)
        /// No connection waits.
        case noneWaiting
        /// accept failed for a reason that stays (EMFILE, ENFILE, ENOMEM): the connection stays
        /// queued in the kernel; the caller backs off.
        case failed(IOError)
    }

    /// Accepts one pending connection.
    public func accept() -> AcceptOutcome { Self.accept(from: descriptor) }

    /// Accepts one pending connection from a listening descriptor held elsewhere (replication's
    /// blocking listener, whose descriptor lives in a `TransportDescriptor`).
    public static func accept(from descriptor: Int32) -> AcceptOutcome {
        while true {
            let connection = small_db_accept_nonblocking(descriptor)
            if connection >= 0 {
                TCPSocket.disableNagle(connection)
                return .accepted(connection)
            }
            let code = Errno.current
            if Errno.isWouldBlock(code) { return .noneWaiting }
            // That connection is gone before we took it: try the next.
            if Errno.isInterrupted(code) || code == ECONNABORTED || code == EPROTO { continue }
            return .failed(IOError("accept", code: code))
        }
    }

    public func close() { SocketIO.close(descriptor) }
}

/// Why a listening socket could not be opened.
public enum ListenError: Error, Sendable, Equatable, CustomStringConvertible {
    case address(AddressError)
    case system(IOError, address: String)

    public var description: String {
        switch self {
        case .address(let error): "cannot resolve listen address \(error)"
        case .system(let error, let address): "\(error.operation) \(address) failed: \(error.reason)"
        }
    }
}
