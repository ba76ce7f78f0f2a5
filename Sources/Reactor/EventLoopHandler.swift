/// Something an event loop watches: a listening socket, a connection, a test's echo.
public protocol EventLoopHandler: AnyObject {
    /// Called on the loop's thread with the events epoll reported.
    func handleEvents(_ events: EpollEvents)
    /// Called on the loop's thread in the iteration after the handler asked for it with
    /// `EventLoop.continueNextIteration` (it stopped with work left, to let the others have a turn).
    func continueWork()
}

extension EventLoopHandler {
    public func continueWork() {}
}

/// One registration with an event loop. epoll reports the registration's id, never the
/// descriptor: a descriptor number is reused as soon as it is closed, and an event still queued
/// for the old socket in this iteration must not reach the handler of the new one (SwiftNIO's
/// SelectorEpoll keeps registration ids for the same reason).
public struct Registration: Sendable, Hashable {
    public let descriptor: Int32
    let id: UInt64
}
