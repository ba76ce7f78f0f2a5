import Platform
import Reactor
import Synchronization
import WireProtocol

/// Listens for replication connections over TCP.
///
/// `accept` waits in poll(2); `close()` shuts the listening socket down, which wakes it (Linux
/// reports the shut-down socket readable and accept fails), and the descriptor itself is closed
/// when no thread is in `accept` any more (`TransportDescriptor`). Accepted sockets are
/// non-blocking, close-on-exec, with TCP_NODELAY (frames are whole messages: Nagle would only delay
/// acks and heartbeats).
public final class TCPReplicationListener: ReplicationListener {
    public let address: String
    public let port: Int
    public let sendTimeout: Duration
    private let socket: TransportDescriptor
    private let blockedAcceptorCount = Atomic<Int>(0)

    /// Binds and listens on `address` (Go syntax: ":9090", "127.0.0.1:0", "localhost:9090",
    /// "[::1]:9090"). An empty host listens on every interface, IPv6 and IPv4 alike (IPv4 alone
    /// where IPv6 sockets cannot be opened: the reactor's `ListeningSocket`).
    public init(address text: String, sendTimeout: Duration = .seconds(5), backlog: Int32 = 16) throws(TransportError) {
        let listener: ListeningSocket
        do throws(ListenError) {
            listener = try ListeningSocket.open(try Self.parse(text), backlog: backlog)
        } catch {
            throw TransportError(error)
        }
        socket = TransportDescriptor(listener.descriptor)
        port = Int(listener.port)
        address = listener.localAddress.description
        self.sendTimeout = sendTimeout
    }

    static func parse(_ text: String) throws(ListenError) -> NetworkAddress {
        do throws(AddressError) { return try NetworkAddress(parsing: text) } catch { throw .address(error) }
    }

    public func accept() throws(TransportError) -> any ReplicationConnection {
        try socket.use { (listener) throws(TransportError) -> any ReplicationConnection in
            while true {
                blockedAcceptorCount.add(1, ordering: .releasing)
                let waited = SocketIO.wait(listener, for: .readable, until: nil)
                blockedAcceptorCount.subtract(1, ordering: .releasing)
                if socket.isClosed { throw .closed }
                if case .failed(let error) = waited { throw TransportError(error) }
                switch ListeningSocket.accept(from: listener) {
                case .accepted(let connection): return TCPReplicationConnection(descriptor: connection, sendTimeout: sendTimeout)
                case .noneWaiting: continue  // that connection is gone; wait for the next
                case .failed(let error): throw socket.isClosed ? .closed : TransportError(error)
                }
            }
        }
    }

    public func close() { socket.close() }

    /// Threads blocked in `accept`'s poll right now (for tests that must act while one is).
    var blockedAcceptors: Int { blockedAcceptorCount.load(ordering: .acquiring) }
}

/// Dials a replication listener over TCP: each address the host resolves to in turn, a
/// non-blocking connect bounded by the timeout (all addresses together), then TCP_NODELAY.
public struct TCPReplicationDialer: ReplicationDialer {
    public let target: String
    public let sendTimeout: Duration

    /// `address` is "host:port" (Go syntax; ":port" dials this machine). It is parsed at each
    /// `connect`, so a bad one fails there with `.invalidAddress`.
    public init(address: String, sendTimeout: Duration = .seconds(5)) {
        target = address
        self.sendTimeout = sendTimeout
    }

    public func connect(timeout: Duration) throws(TransportError) -> any ReplicationConnection {
        let candidates: [SocketAddress]
        do throws(AddressError) {
            candidates = try AddressResolver.resolve(try NetworkAddress(parsing: target), forListening: false)
        } catch {
            throw .invalidAddress(error.description)
        }
        let deadline = ContinuousClock.now.advanced(by: max(timeout, .zero))
        var lastFailure = TransportError.invalidAddress("\(target) resolves to no address")
        for candidate in candidates {
            do throws(DialError) {
                let descriptor = try TCPSocket.connect(to: candidate, deadline: deadline)
                return TCPReplicationConnection(descriptor: descriptor, sendTimeout: sendTimeout)
            } catch {
                switch error {
                case .timedOut: throw .timedOut
                case .failed(let failure): lastFailure = TransportError(failure)
                }
            }
        }
        throw lastFailure
    }
}

/// One TCP replication connection.
///
/// The socket is non-blocking; waits are poll(2) calls, so timeouts are exact to the millisecond
/// and `close()` (a shutdown, see `TransportDescriptor`) wakes them. Receiving reads up to 64 KiB
/// at a time into the connection's `ReplicationFrameDecoder`. Sends are serialised by a lock, so
/// frames from several threads never interleave; the send timeout bounds each wait for the peer to
/// take bytes (a large frame to a slow but live peer is not a timeout).
final class TCPReplicationConnection: ReplicationConnection {
    let peer: String
    let sendTimeout: Duration
    private let socket: TransportDescriptor

    private struct Receiving {
        var decoder = ReplicationFrameDecoder()
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
    }

    private let receiving = Lock(Receiving())
    private let blockedReceiverCount = Atomic<Int>(0)
    /// The encoding buffer, reused across sends; the lock also serialises the socket's writes.
    private let sending = Lock<[UInt8]>([])

    /// `descriptor` is connected, non-blocking, with TCP_NODELAY (`ListeningSocket.accept`,
    /// `TCPSocket.connect`).
    init(descriptor: Int32, sendTimeout: Duration) {
        peer = SocketAddress(of: descriptor, peer: true)?.description ?? "?"
        socket = TransportDescriptor(descriptor)
        self.sendTimeout = sendTimeout
    }

    func send(_ frame: ReplicationFrame, timeout: Duration?) throws(TransportError) {
        let deadline = TransportDeadline(after: timeout ?? sendTimeout)
        try sending.withLock { (buffer) throws(TransportError) in
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            ReplicationFrameEncoder.append(frame, to: &buffer)
            // Array.withUnsafeBytes rethrows untyped errors: the outcome crosses it as a Result.
            let outcome = buffer.withUnsafeBytes { bytes in Result { () throws(TransportError) in try writeAll(bytes, deadline) } }
            try outcome.get()
        }
    }

    func send(encoded bytes: UnsafeRawBufferPointer, timeout: Duration?) throws(TransportError) {
        let deadline = TransportDeadline(after: timeout ?? sendTimeout)
        try sending.withLock { (_) throws(TransportError) in try writeAll(bytes, deadline) }
    }

    /// Writes every byte or closes the connection (the peer may hold part of a frame). The caller
    /// holds `sending`.
    private func writeAll(_ bytes: UnsafeRawBufferPointer, _ deadline: TransportDeadline) throws(TransportError) {
        // One deadline for the whole call, not per wait: a peer that drains a few bytes at a time
        // must not hold the sender (the primary's committer) past it.
        do throws(TransportError) {
            try socket.use { (descriptor) throws(TransportError) in
                var written = 0
                while written < bytes.count {
                    if socket.isClosed { throw .closed }
                    switch SocketIO.write(descriptor, UnsafeRawBufferPointer(rebasing: bytes[written...])) {
                    case .wrote(let count):
                        written += count
                    case .wouldBlock:
                        if deadline.hasPassed { throw .timedOut }
                        switch SocketIO.wait(descriptor, for: .writable, until: deadline.instant) {
                        case .ready: continue
                        case .timedOut: throw .timedOut
                        case .failed(let error): throw TransportError(error)
                        }
                    case .peerGone: throw socket.isClosed ? .closed : .peerClosed
                    case .failed(let error): throw socket.isClosed ? .closed : TransportError(error)
                    }
                }
            }
        } catch {
            socket.close()
            throw error
        }
    }

    func receive(timeout: Duration?) throws(TransportError) -> ReplicationFrame {
        let deadline = TransportDeadline.after(timeout)
        return try receiving.withLock { (state) throws(TransportError) -> ReplicationFrame in
            try socket.use { (descriptor) throws(TransportError) -> ReplicationFrame in
                while true {
                    if socket.isClosed { throw .closed }
                    do throws(ReplicationFrameError) {
                        if let frame = try state.decoder.nextFrame() { return frame }
                    } catch {
                        throw .frame(error)
                    }
                    blockedReceiverCount.add(1, ordering: .releasing)
                    let waited = SocketIO.wait(descriptor, for: .readable, until: deadline?.instant)
                    blockedReceiverCount.subtract(1, ordering: .releasing)
                    switch waited {
                    case .ready: break
                    case .timedOut: throw .timedOut
                    case .failed(let error): throw TransportError(error)
                    }
                    if socket.isClosed { throw .closed }
                    let outcome = state.scratch.withUnsafeMutableBytes { SocketIO.read(descriptor, into: $0) }
                    switch outcome {
                    case .bytes(let count):
                        state.scratch.withUnsafeBytes { state.decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    case .wouldBlock: continue
                    case .endOfInput, .peerGone: throw socket.isClosed ? .closed : .peerClosed
                    case .failed(let error): throw socket.isClosed ? .closed : TransportError(error)
                    }
                }
            }
        }
    }

    func close() { socket.close() }

    func limitIncomingPayloads(to bytes: Int) {
        receiving.withLock { $0.decoder.maxPayloadSize = min(bytes, ReplicationProtocol.maxPayloadSize) }
    }

    /// Threads blocked in `receive`'s poll right now (for tests that must act while one is).
    var blockedReceivers: Int { blockedReceiverCount.load(ordering: .acquiring) }
}
