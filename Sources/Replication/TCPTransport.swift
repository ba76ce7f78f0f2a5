import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif
import Platform
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
    /// "[::1]:9090"). An empty host listens on every interface, IPv6 and IPv4 alike.
    public init(address text: String, sendTimeout: Duration = .seconds(5), backlog: Int32 = 16) throws(TransportError) {
        let parsed = try TransportAddress(parsing: text)
        let descriptor: Int32
        if parsed.host.isEmpty {
            descriptor = try Self.listenOnEveryInterface(port: parsed.port, backlog: backlog)
        } else {
            descriptor = try parsed.withEachResolved(passive: true) { (address, length, family) throws(TransportError) in
                try Self.listen(family: family, address: address, length: length, backlog: backlog)
            }
        }
        socket = TransportDescriptor(descriptor)
        port = boundPort(of: descriptor)
        address = socketAddressText(of: descriptor, peer: false)
        self.sendTimeout = sendTimeout
    }

    public func accept() throws(TransportError) -> any ReplicationConnection {
        try socket.use { (listener) throws(TransportError) -> any ReplicationConnection in
            while true {
                var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                blockedAcceptorCount.add(1, ordering: .releasing)
                let ready = poll(&poller, 1, -1)
                blockedAcceptorCount.subtract(1, ordering: .releasing)
                if socket.isClosed { throw .closed }
                if ready < 0 {
                    if errno == EINTR { continue }
                    throw .io(operation: "poll", errno: errno)
                }
                let connection = small_db_accept_nonblocking(listener)
                if connection >= 0 {
                    return TCPReplicationConnection(descriptor: connection, sendTimeout: sendTimeout)
                }
                switch errno {
                case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO: continue  // that connection is gone; wait for the next
                case let code: throw socket.isClosed ? .closed : .io(operation: "accept", errno: code)
                }
            }
        }
    }

    public func close() { socket.close() }

    /// Threads blocked in `accept`'s poll right now (for tests that must act while one is).
    var blockedAcceptors: Int { blockedAcceptorCount.load(ordering: .acquiring) }

    private static func listenOnEveryInterface(port: UInt16, backlog: Int32) throws(TransportError) -> Int32 {
        var any6 = sockaddr_in6()
        any6.sin6_family = sa_family_t(AF_INET6)
        any6.sin6_port = port.bigEndian
        any6.sin6_addr = in6addr_any
        do {
            return try withUnsafePointer(to: &any6) { (pointer) throws(TransportError) -> Int32 in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(TransportError) -> Int32 in
                    try listen(family: AF_INET6, address: address, length: socklen_t(MemoryLayout<sockaddr_in6>.size), backlog: backlog)
                }
            }
        } catch .io(operation: "socket", errno: EAFNOSUPPORT) {
            // No IPv6 on this machine: every IPv4 interface then.
            var any4 = sockaddr_in()
            any4.sin_family = sa_family_t(AF_INET)
            any4.sin_port = port.bigEndian
            any4.sin_addr.s_addr = INADDR_ANY
            return try withUnsafePointer(to: &any4) { (pointer) throws(TransportError) -> Int32 in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(TransportError) -> Int32 in
                    try listen(family: AF_INET, address: address, length: socklen_t(MemoryLayout<sockaddr_in>.size), backlog: backlog)
                }
            }
        }
    }

    private static func listen(
        family: Int32, address: UnsafePointer<sockaddr>, length: socklen_t, backlog: Int32
    ) throws(TransportError) -> Int32 {
        let descriptor = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .io(operation: "socket", errno: errno) }
        var on: Int32 = 1
        var off: Int32 = 0
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 {
            // Dual stack, as Go's ":port": an IPv6 socket on "::" accepts IPv4 connections too.
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        guard bind(descriptor, address, length) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw .io(operation: "bind", errno: code)
        }
        guard Glibc.listen(descriptor, backlog) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw .io(operation: "listen", errno: code)
        }
        return descriptor
    }
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
        let parsed = try TransportAddress(parsing: target)
        let deadline = TransportDeadline(after: timeout)
        let descriptor = try parsed.withEachResolved(passive: false) { (address, length, family) throws(TransportError) in
            try Self.connect(family: family, address: address, length: length, deadline: deadline)
        }
        return TCPReplicationConnection(descriptor: descriptor, sendTimeout: sendTimeout)
    }

    private static func connect(
        family: Int32, address: UnsafePointer<sockaddr>, length: socklen_t, deadline: TransportDeadline
    ) throws(TransportError) -> Int32 {
        let descriptor = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .io(operation: "socket", errno: errno) }
        var connected = false
        defer { if !connected { Glibc.close(descriptor) } }
        if Glibc.connect(descriptor, address, length) != 0 {
            guard errno == EINPROGRESS || errno == EINTR else { throw .io(operation: "connect", errno: errno) }
            while true {
                var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&poller, 1, deadline.pollMilliseconds)
                if ready > 0 { break }
                if ready < 0 && errno != EINTR { throw .io(operation: "poll", errno: errno) }
                if ready == 0 && deadline.hasPassed { throw .timedOut }
            }
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &size)
            guard failure == 0 else { throw .io(operation: "connect", errno: failure) }
        }
        connected = true
        return descriptor
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

    init(descriptor: Int32, sendTimeout: Duration) {
        var on: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        peer = socketAddressText(of: descriptor, peer: true)
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
                    let count = Glibc.send(descriptor, bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
                    if count > 0 {
                        written += count
                        continue
                    }
                    switch errno {
                    case EINTR: continue
                    case EAGAIN, EWOULDBLOCK:
                        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                        if deadline.hasPassed { throw .timedOut }
                        let ready = poll(&poller, 1, deadline.pollMilliseconds)
                        if ready == 0 { throw .timedOut }
                        if ready < 0 && errno != EINTR { throw .io(operation: "poll", errno: errno) }
                    case EPIPE, ECONNRESET: throw socket.isClosed ? .closed : .peerClosed
                    case let code: throw socket.isClosed ? .closed : .io(operation: "send", errno: code)
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
                    var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    blockedReceiverCount.add(1, ordering: .releasing)
                    let ready = poll(&poller, 1, deadline?.pollMilliseconds ?? -1)
                    blockedReceiverCount.subtract(1, ordering: .releasing)
                    if ready < 0 {
                        if errno == EINTR { continue }
                        throw .io(operation: "poll", errno: errno)
                    }
                    if ready == 0 {
                        if deadline?.hasPassed ?? false { throw .timedOut }
                        continue
                    }
                    let count = state.scratch.withUnsafeMutableBytes { Glibc.recv(descriptor, $0.baseAddress, $0.count, 0) }
                    if count > 0 {
                        state.scratch.withUnsafeBytes { state.decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                        continue
                    }
                    if count == 0 { throw socket.isClosed ? .closed : .peerClosed }
                    switch errno {
                    case EINTR, EAGAIN, EWOULDBLOCK: continue
                    case ECONNRESET, EPIPE: throw socket.isClosed ? .closed : .peerClosed
                    case let code: throw socket.isClosed ? .closed : .io(operation: "recv", errno: code)
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
