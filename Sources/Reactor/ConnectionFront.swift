/// A protocol front: what a `ConnectionServer` needs from HTTP, RESP or a test's echo.
public protocol ConnectionFront: AnyObject, Sendable {
    /// Called once on each loop's thread before it accepts (a front's per-loop state, hooks).
    func attach(to loop: EventLoop)
    /// The handler of a new connection, on its loop's thread.
    func makeHandler(for connection: Connection) -> any ConnectionHandler
    /// What a connection over the cap is sent before it is closed (HTTP's 503), if anything.
    func rejection(limit: Int) -> [UInt8]
}
