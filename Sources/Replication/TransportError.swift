import Platform
import Reactor
public import WireProtocol

/// Why a transport operation failed.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This side closed the connection or listener (possibly from another thread, while the call
    /// was blocked).
    case closed
    /// The deadline passed: nothing arrived within a receive's timeout, the peer took no bytes
    /// within the send timeout, or a connect did not complete in time.
    case timedOut
    /// The peer closed the connection (or reset it). Frames it sent before are all delivered first.
    case peerClosed
    /// A system call failed; `errno` says why (ECONNREFUSED from "connect": nobody listens there).
    case io(operation: String, errno: Int32)
    /// An address that does not parse or resolve, and why.
    case invalidAddress(String)
    /// The peer sent bytes that are not valid frames; the connection is unusable.
    case frame(ReplicationFrameError)

    public var description: String {
        switch self {
        case .closed: "connection closed"
        case .timedOut: "timed out"
        case .peerClosed: "the peer closed the connection"
        case .io(let operation, let code): "\(operation) failed: \(errnoDescription(code)) (errno \(code))"
        case .invalidAddress(let reason): "invalid address: \(reason)"
        case .frame(let error): error.description
        }
    }
}

extension TransportError {
    /// A failed system call, as the transport reports it.
    init(_ error: IOError) {
        self = .io(operation: error.operation, errno: error.code)
    }

    /// A listener that could not be opened: the address, or the system call that refused.
    init(_ error: ListenError) {
        switch error {
        case .address(let address): self = .invalidAddress(address.description)
        case .system(let failure, _): self.init(failure)
        }
    }
}
