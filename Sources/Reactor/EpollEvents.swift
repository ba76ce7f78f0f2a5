import CLinuxShims

/// The events a registration watches, and those epoll reports: the one place epoll's bits are
/// spelled out.
public struct EpollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Input is ready (EPOLLIN); for a listening socket, a connection is waiting.
    public static let readable = EpollEvents(rawValue: EPOLLIN.rawValue)
    /// The socket takes more output (EPOLLOUT).
    public static let writable = EpollEvents(rawValue: EPOLLOUT.rawValue)
    /// The peer shut down its sending side (EPOLLRDHUP): no more input will come.
    public static let readHangUp = EpollEvents(rawValue: EPOLLRDHUP.rawValue)
    /// Both directions are gone (EPOLLHUP, always reported).
    public static let hangUp = EpollEvents(rawValue: EPOLLHUP.rawValue)
    /// An error is pending on the socket (EPOLLERR, always reported).
    public static let error = EpollEvents(rawValue: EPOLLERR.rawValue)
    /// Wake only one of the loops that watch this descriptor (EPOLLEXCLUSIVE): for the shared
    /// listening socket. It cannot be changed by a modification, only registered anew.
    public static let exclusive = EpollEvents(rawValue: EPOLLEXCLUSIVE.rawValue)

    /// What a connection that reads watches.
    public static let input: EpollEvents = [.readable, .readHangUp]
}
