#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization
public import WireProtocol

/// Replication connections inside one process, for tests: listeners registered by name, dialers
/// that connect to them, and connections that are pairs of byte pipes. Frames go through the same
/// `ReplicationFrameEncoder` and `ReplicationFrameDecoder` as over TCP, so they are really encoded
/// and checked, and `InMemoryReplicationConnection.sendRaw` can inject damaged bytes.
///
/// As with TCP: a connect succeeds as soon as a listener of that name exists, queueing until it is
/// accepted (a listener that never accepts leaves the dialer's frames waiting); a connect to a
/// name with no open listener fails with `.io(operation: "connect", errno: ECONNREFUSED)`; a pipe
/// holds at most `pipeCapacity` unread bytes (a frame is always let in whole once the pipe is
/// below it), so a sender to a peer that stops reading blocks, then times out.
public final class InMemoryReplicationNetwork: Sendable {
    public let pipeCapacity: Int
    public let sendTimeout: Duration
    private let listeners = Lock<[String: InMemoryReplicationListener]>([:])
    private let nextConnection = Atomic<Int>(1)

    public init(pipeCapacity: Int = 4 << 20, sendTimeout: Duration = .seconds(5)) {
        self.pipeCapacity = max(1, pipeCapacity)
        self.sendTimeout = sendTimeout
    }

    /// Listens on `address` (any name). Fails with `.io(operation: "listen", errno: EADDRINUSE)` if
    /// an open listener already has it; a closed listener's name is free again.
    public func makeListener(address: String = "memory") throws(TransportError) -> any ReplicationListener {
        try listeners.withLock { (listeners) throws(TransportError) -> any ReplicationListener in
            guard listeners[address] == nil else { throw .io(operation: "listen", errno: EADDRINUSE) }
            let listener = InMemoryReplicationListener(network: self, address: address)
            listeners[address] = listener
            return listener
        }
    }

    public func makeDialer(address: String = "memory") -> any ReplicationDialer {
        InMemoryReplicationDialer(network: self, target: address)
    }

    func connect(to address: String) throws(TransportError) -> InMemoryReplicationConnection {
        let id = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue
        let link = TransportMonitor(InMemoryLink())
        let dialing = InMemoryReplicationConnection(link: link, end: 0, peer: "\(address)#\(id)", network: self)
        let accepted = InMemoryReplicationConnection(link: link, end: 1, peer: "memory#\(id)", network: self)
        let listener = listeners.withLock { $0[address] }
        guard let listener, listener.enqueue(accepted) else {
            throw .io(operation: "connect", errno: ECONNREFUSED)
        }
        return dialing
    }

    func remove(_ listener: InMemoryReplicationListener) {
        listeners.withLock { listeners in
            if listeners[listener.address] === listener { listeners[listener.address] = nil }
        }
    }
}

/// Both directions of one in-memory connection. End 0 dialled, end 1 was accepted; `pipes[e]`
/// holds the bytes end `e` sent and the other end has not taken yet; `closed[e]`: end `e` closed.
struct InMemoryLink {
    var pipes: [[UInt8]] = [[], []]
    var closed = [false, false]
    /// Threads of end `e` waiting in `receive` for the other end's bytes.
    var blockedReceivers = [0, 0]
}

/// One end of an in-memory connection.
public final class InMemoryReplicationConnection: ReplicationConnection {
    public let peer: String
    private let link: TransportMonitor<InMemoryLink>
    private let end: Int
    private let pipeCapacity: Int
    private let sendTimeout: Duration
    /// The receiving side's decoder; the lock makes receivers take turns.
    private let decoder = Lock(ReplicationFrameDecoder())

    init(link: TransportMonitor<InMemoryLink>, end: Int, peer: String, network: InMemoryReplicationNetwork) {
        self.link = link
        self.end = end
        self.peer = peer
        pipeCapacity = network.pipeCapacity
        sendTimeout = network.sendTimeout
    }

    public func send(_ frame: ReplicationFrame, timeout: Duration?) throws(TransportError) {
        try sendRaw(ReplicationFrameEncoder.encode(frame), timeout: timeout)
    }

    public func send(encoded bytes: UnsafeRawBufferPointer, timeout: Duration?) throws(TransportError) {
        try sendRaw(Array(bytes), timeout: timeout)
    }

    /// Puts `bytes` on the wire as they are, frames or not: for tests of what a peer does with
    /// garbage. Same blocking and timeout as `send`.
    public func sendRaw(_ bytes: [UInt8], timeout: Duration? = nil) throws(TransportError) {
        let deadline = TransportDeadline(after: timeout ?? sendTimeout)
        let end = end
        let capacity = pipeCapacity
        let sent = try link.wait(until: deadline) { (link) throws(TransportError) -> Bool? in
            if link.closed[end] { throw .closed }
            if link.closed[1 - end] { throw .peerClosed }
            guard link.pipes[end].count < capacity else { return nil }
            link.pipes[end].append(contentsOf: bytes)
            return true
        }
        guard sent != nil else {
            close()  // as over TCP: a failed send ends the connection
            throw .timedOut
        }
        link.broadcast()
    }

    public func receive(timeout: Duration?) throws(TransportError) -> ReplicationFrame {
        let deadline = TransportDeadline.after(timeout)
        let end = end
        return try decoder.withLock { (decoder) throws(TransportError) -> ReplicationFrame in
            while true {
                let isClosed = link.withLock { $0.closed[end] }
                if isClosed { throw .closed }
                do throws(ReplicationFrameError) {
                    if let frame = try decoder.nextFrame() { return frame }
                } catch {
                    throw .frame(error)
                }
                // Counted as blocked from the first look to the end of the wait (both under the lock).
                var counted = false
                defer { if counted { link.withLock { $0.blockedReceivers[end] -= 1 } } }
                let bytes = try link.wait(until: deadline) { (link) throws(TransportError) -> [UInt8]? in
                    if link.closed[end] { throw .closed }
                    if !link.pipes[1 - end].isEmpty {
                        defer { link.pipes[1 - end] = [] }
                        return link.pipes[1 - end]
                    }
                    if link.closed[1 - end] { throw .peerClosed }
                    if !counted {
                        counted = true
                        link.blockedReceivers[end] += 1
                    }
                    return nil
                }
                guard let bytes else { throw .timedOut }
                link.broadcast()  // room in the pipe for a waiting sender
                decoder.append(bytes)
            }
        }
    }

    public func close() {
        let end = end
        link.withLock { $0.closed[end] = true }
        link.broadcast()
    }

    public func limitIncomingPayloads(to bytes: Int) {
        decoder.withLock { $0.maxPayloadSize = min(bytes, ReplicationProtocol.maxPayloadSize) }
    }

    /// Threads waiting in `receive` for bytes right now (for tests that must act while one is).
    var blockedReceivers: Int { link.withLock { $0.blockedReceivers[end] } }
}

final class InMemoryReplicationListener: ReplicationListener {
    let address: String
    var port: Int { 0 }
    /// Strong: the network holds an open listener in its registry and drops it on `close()`, so
    /// the cycle lasts only while the listener is open.
    private let network: InMemoryReplicationNetwork

    private struct Backlog {
        var waiting: [InMemoryReplicationConnection] = []
        var closed = false
        /// Threads waiting in `accept` right now.
        var blockedAcceptors = 0
    }

    private let backlog = TransportMonitor(Backlog())

    init(network: InMemoryReplicationNetwork, address: String) {
        self.network = network
        self.address = address
    }

    func accept() throws(TransportError) -> any ReplicationConnection {
        var counted = false
        defer { if counted { backlog.withLock { $0.blockedAcceptors -= 1 } } }
        let connection = try backlog.wait(until: nil) { (backlog) throws(TransportError) -> InMemoryReplicationConnection? in
            if backlog.closed { throw .closed }
            if backlog.waiting.isEmpty {
                if !counted {
                    counted = true
                    backlog.blockedAcceptors += 1
                }
                return nil
            }
            return backlog.waiting.removeFirst()
        }
        guard let connection else { throw .closed }  // unreachable: no deadline
        return connection
    }

    /// Threads waiting in `accept` right now (for tests that must act while one is).
    var blockedAcceptors: Int { backlog.withLock { $0.blockedAcceptors } }

    /// Queues an incoming connection; false if the listener is closed.
    func enqueue(_ connection: InMemoryReplicationConnection) -> Bool {
        let queued = backlog.withLock { backlog in
            guard !backlog.closed else { return false }
            backlog.waiting.append(connection)
            return true
        }
        backlog.broadcast()
        return queued
    }

    /// Stops accepting, frees the name, and closes the connections never accepted.
    func close() {
        let abandoned = backlog.withLock { backlog -> [InMemoryReplicationConnection] in
            backlog.closed = true
            defer { backlog.waiting = [] }
            return backlog.waiting
        }
        backlog.broadcast()
        network.remove(self)
        for connection in abandoned { connection.close() }
    }
}

struct InMemoryReplicationDialer: ReplicationDialer {
    let network: InMemoryReplicationNetwork
    let target: String

    func connect(timeout: Duration) throws(TransportError) -> any ReplicationConnection {
        try network.connect(to: target)
    }
}
