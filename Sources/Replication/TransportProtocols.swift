public import WireProtocol

/// One replication connection: whole frames in both directions, blocking, for threads (the
/// replication layer runs on threads of its own, never on event loops or Swift's cooperative pool).
///
/// What must stay true of every implementation:
/// - `send` and `receive` see the same bytes a TCP stream would carry: frames go through
///   `ReplicationFrameEncoder` and `ReplicationFrameDecoder`, so a damaged stream is detected.
/// - `close()` from any thread wakes every thread blocked in `send` or `receive` on this
///   connection; they throw `.closed`. It never invalidates a resource another thread is using.
/// - A failed `send` closes the connection: the peer may hold part of a frame, so the stream can
///   no longer be trusted.
public protocol ReplicationConnection: AnyObject, Sendable {
    /// Sends one frame whole. Safe from several threads (serialised internally). Fails with
    /// `.timedOut` if the peer has not taken it all within `timeout` (nil: the connection's send
    /// timeout), counted from the call.
    func send(_ frame: ReplicationFrame, timeout: Duration?) throws(TransportError)
    /// Sends already-encoded bytes (one or more whole frames), by the same rules.
    func send(encoded: UnsafeRawBufferPointer, timeout: Duration?) throws(TransportError)
    /// The next frame, waiting at most `timeout` (nil: forever). One receiving thread at a time
    /// (a second one waits for the first). After the peer closes, the frames it sent before are
    /// returned first, then `.peerClosed`.
    func receive(timeout: Duration?) throws(TransportError) -> ReplicationFrame
    /// Closes both directions. Idempotent; wakes blocked senders and receivers (they throw `.closed`).
    func close()
    /// From the next frame on, refuses (with `.frame(.payloadTooLarge)`) any frame whose payload
    /// is larger than `bytes`, as soon as its header arrives: what a peer can make this side
    /// buffer in each state of the protocol (a primary's connections, a backup before the welcome).
    func limitIncomingPayloads(to bytes: Int)
    /// Who is at the other end, for logs: "127.0.0.1:53422", "memory#3".
    var peer: String { get }
}

extension ReplicationConnection {
    /// Sends one frame within the connection's send timeout.
    public func send(_ frame: ReplicationFrame) throws(TransportError) {
        try send(frame, timeout: nil)
    }

    /// Sends encoded frames within the connection's send timeout.
    public func send(encoded: UnsafeRawBufferPointer) throws(TransportError) {
        try send(encoded: encoded, timeout: nil)
    }
}

/// Accepts replication connections (the primary's side).
public protocol ReplicationListener: AnyObject, Sendable {
    /// The next incoming connection; blocks until one arrives or `close()` is called (then throws
    /// `.closed`).
    func accept() throws(TransportError) -> any ReplicationConnection
    /// Stops listening; idempotent; wakes a blocked `accept`. Connections already accepted stay open.
    func close()
    /// What it is bound to, with the actual port: "127.0.0.1:9090", "[::]:41234", "memory".
    var address: String { get }
    /// The bound port (the kernel's choice when asked for port 0); 0 for in-memory listeners.
    var port: Int { get }
}

/// Opens replication connections to one place (the backup's side).
public protocol ReplicationDialer: Sendable {
    func connect(timeout: Duration) throws(TransportError) -> any ReplicationConnection
    /// Where it connects, as given: "primary.example:9090", "memory".
    var target: String { get }
}
