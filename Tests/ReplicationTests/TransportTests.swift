// Both transports, TCP and in-memory, against the same contract (TransportProtocols.swift): frames
// both ways, receive timeouts, close() from another thread, peer close, garbage, large frames.
// Waits use real blocking calls with short timeouts; where a test starts a thread to block, it
// waits until the transport reports that thread blocked (`blockedReceivers`, `blockedAcceptors`)
// before the other side acts, so the test exercises the wake-up it claims to.
import Dispatch
@testable import Replication
import Platform
import Testing
import WireProtocol

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Harness

enum TransportKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case tcp
    case memory

    var description: String { rawValue }
}

/// A listener and a dialer connected to it.
struct TransportHarness {
    let listener: any ReplicationListener
    let dialer: any ReplicationDialer

    init(_ kind: TransportKind, sendTimeout: Duration = .seconds(5), pipeCapacity: Int = 4 << 20) throws {
        switch kind {
        case .tcp:
            let listener = try TCPReplicationListener(address: "127.0.0.1:0", sendTimeout: sendTimeout)
            self.listener = listener
            dialer = TCPReplicationDialer(address: "127.0.0.1:\(listener.port)", sendTimeout: sendTimeout)
        case .memory:
            let network = InMemoryReplicationNetwork(pipeCapacity: pipeCapacity, sendTimeout: sendTimeout)
            listener = try network.makeListener()
            dialer = network.makeDialer()
        }
    }

    /// (dialled end, accepted end).
    func connectedPair() throws -> (client: any ReplicationConnection, server: any ReplicationConnection) {
        let client = try dialer.connect(timeout: .seconds(5))
        let server = try listener.accept()
        return (client, server)
    }
}

/// Runs `body` on a Dispatch thread (never the test's cooperative thread); `wait()` returns its
/// result.
final class Background<Value: Sendable>: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = Lock<Value?>(nil)

    init(_ body: @escaping @Sendable () -> Value) {
        DispatchQueue.global().async { [self] in
            let value = body()
            result.withLock { $0 = value }
            done.signal()
        }
    }

    func wait() -> Value {
        done.wait()
        return result.withLock { $0! }
    }
}

/// `send(encoded:)` of an array. (Through a Result: a typed-throws closure passed to the
/// rethrowing `withUnsafeBytes` crashes the 6.3.1 compiler in IRGen.)
func sendEncoded(_ bytes: [UInt8], on connection: any ReplicationConnection) throws(TransportError) {
    let outcome = bytes.withUnsafeBytes { raw in Result { () throws(TransportError) in try connection.send(encoded: raw) } }
    try outcome.get()
}

/// The error `body` throws, or nil.
func transportError<T>(_ body: () throws(TransportError) -> T) -> TransportError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

private let hello = ReplicationFrame.hello(Hello(
    epoch: 2, lineage: Lineage(high: 1, low: 2), position: ReplicationPosition(generation: 1, offset: 64), prefixCRC: 9))

/// Threads blocked in `connection`'s receive right now.
func blockedReceivers(_ connection: any ReplicationConnection) -> Int {
    if let tcp = connection as? TCPReplicationConnection { return tcp.blockedReceivers }
    if let memory = connection as? InMemoryReplicationConnection { return memory.blockedReceivers }
    return 0
}

/// Threads blocked in `listener`'s accept right now.
func blockedAcceptors(_ listener: any ReplicationListener) -> Int {
    if let tcp = listener as? TCPReplicationListener { return tcp.blockedAcceptors }
    if let memory = listener as? InMemoryReplicationListener { return memory.blockedAcceptors }
    return 0
}

/// Polls until `condition` holds (a state that lasts: a thread stays blocked until the test acts),
/// at most 30 s.
func waitUntil(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        usleep(1_000)  // paces the poll only
    }
    return true
}

// MARK: - Both transports

@Suite struct TransportContractTests {
    @Test(arguments: TransportKind.allCases)
    func framesGoBothWays(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        try client.send(hello)
        #expect(try server.receive(timeout: .seconds(5)) == hello)
        let welcome = ReplicationFrame.welcome(Welcome(
            epoch: 2, lineage: Lineage(high: 1, low: 2),
            history: [EpochStart(epoch: 2, start: ReplicationPosition(generation: 1, offset: 0))], mode: .stream))
        try server.send(welcome)
        #expect(try client.receive(timeout: .seconds(5)) == welcome)
        // Several encoded frames in one send arrive one by one.
        var encoded: [UInt8] = []
        let frames: [ReplicationFrame] = [
            .records(at: ReplicationPosition(generation: 1, offset: 64), bytes: [1, 2, 3]),
            .startSegment(generation: 2),
            .heartbeat(epoch: 2, position: ReplicationPosition(generation: 2, offset: 0)),
        ]
        for frame in frames { ReplicationFrameEncoder.append(frame, to: &encoded) }
        try sendEncoded(encoded, on: server)
        for frame in frames { #expect(try client.receive(timeout: .seconds(5)) == frame) }
        try client.send(.ack(ReplicationPosition(generation: 2, offset: 0)))
        #expect(try server.receive(timeout: nil) == .ack(ReplicationPosition(generation: 2, offset: 0)))
        #expect(!client.peer.isEmpty && !server.peer.isEmpty)
    }

    @Test(arguments: TransportKind.allCases)
    func receiveTimesOut(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        let started = ContinuousClock.now
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .milliseconds(50)) } == .timedOut)
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(50))
        #expect(elapsed < .seconds(3))
        // The connection still works after a timeout.
        try client.send(.startSegment(generation: 3))
        #expect(try server.receive(timeout: .seconds(5)) == .startSegment(generation: 3))
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .zero) } == .timedOut)
    }

    @Test(arguments: TransportKind.allCases)
    func closeFromAnotherThreadUnblocksReceive(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close() }
        let receiver = Background { () -> TransportError? in
            transportError { () throws(TransportError) in try server.receive(timeout: .seconds(20)) }
        }
        #expect(waitUntil { blockedReceivers(server) == 1 })
        let started = ContinuousClock.now
        server.close()
        #expect(receiver.wait() == .closed)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: nil) } == .closed)
        #expect(transportError { () throws(TransportError) in try server.send(.startSegment(generation: 1)) } == .closed)
        server.close()  // idempotent
    }

    @Test(arguments: TransportKind.allCases)
    func closeFromAnotherThreadUnblocksAccept(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        let acceptor = Background { () -> TransportError? in
            transportError { () throws(TransportError) in try harness.listener.accept() }
        }
        #expect(waitUntil { blockedAcceptors(harness.listener) == 1 })
        harness.listener.close()
        #expect(acceptor.wait() == .closed)
        #expect(transportError { () throws(TransportError) in try harness.listener.accept() } == .closed)
    }

    @Test(arguments: TransportKind.allCases)
    func peerCloseComesAfterTheFramesSentBeforeIt(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { server.close() }
        try client.send(.ack(ReplicationPosition(generation: 1, offset: 1)))
        try client.send(.ack(ReplicationPosition(generation: 1, offset: 2)))
        client.close()
        #expect(try server.receive(timeout: .seconds(5)) == .ack(ReplicationPosition(generation: 1, offset: 1)))
        #expect(try server.receive(timeout: .seconds(5)) == .ack(ReplicationPosition(generation: 1, offset: 2)))
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .seconds(5)) } == .peerClosed)
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .seconds(5)) } == .peerClosed)
    }

    @Test(arguments: TransportKind.allCases)
    func peerCloseWakesABlockedReceive(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { server.close() }
        let receiver = Background { transportError { () throws(TransportError) in try server.receive(timeout: .seconds(20)) } }
        #expect(waitUntil { blockedReceivers(server) == 1 })
        client.close()
        #expect(receiver.wait() == .peerClosed)
    }

    @Test(arguments: TransportKind.allCases)
    func garbageGivesAFrameError(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        let request = Array("GET /v1/kv/a HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        try sendEncoded(request, on: client)
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .seconds(5)) } == .frame(.unknownFrameType(0x47)))
        // A damaged checksum, the other way.
        var damaged = ReplicationFrameEncoder.encode(.ack(ReplicationPosition(generation: 1, offset: 1)))
        damaged[damaged.count - 1] ^= 0x01
        try sendEncoded(damaged, on: server)
        let error = transportError { () throws(TransportError) in try client.receive(timeout: .seconds(5)) }
        guard case .frame(.checksumMismatch) = error else {
            Issue.record("expected a checksum mismatch, got \(String(describing: error))")
            return
        }
    }

    @Test(arguments: TransportKind.allCases)
    func aTenMebibyteRecordsFrameGoesThrough(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        var state: UInt64 = 0x1234
        let records = (0..<(10 << 20)).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        let frame = ReplicationFrame.records(at: ReplicationPosition(generation: 4, offset: 4096), bytes: records)
        let sender = Background { transportError { () throws(TransportError) in try server.send(frame) } }
        let received = try client.receive(timeout: .seconds(30))
        #expect(sender.wait() == nil)
        #expect(received == frame)
    }

    @Test(arguments: TransportKind.allCases)
    func sendsFromSeveralThreadsDoNotInterleave(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        let senders = (0..<4).map { thread in
            Background { () -> TransportError? in
                for index in 0..<200 {
                    let bytes = [UInt8](repeating: UInt8(thread), count: 1000 + index * 50)
                    if let error = transportError({ () throws(TransportError) in
                        try client.send(.records(at: ReplicationPosition(generation: UInt64(thread), offset: UInt64(index)), bytes: bytes))
                    }) { return error }
                }
                return nil
            }
        }
        var next = [UInt64](repeating: 0, count: 4)
        for _ in 0..<800 {
            guard case .records(let at, let bytes) = try server.receive(timeout: .seconds(20)) else {
                Issue.record("not a records frame")
                return
            }
            let thread = Int(at.generation)
            #expect(at.offset == next[thread])
            #expect(bytes == [UInt8](repeating: UInt8(thread), count: 1000 + Int(at.offset) * 50))
            next[thread] += 1
        }
        for sender in senders { #expect(sender.wait() == nil) }
    }

    @Test(arguments: TransportKind.allCases)
    func aPeerThatDoesNotReadMakesSendTimeOut(_ kind: TransportKind) throws {
        let harness = try TransportHarness(kind, sendTimeout: .milliseconds(100), pipeCapacity: 1 << 20)
        defer { harness.listener.close() }
        let (client, server) = try harness.connectedPair()
        defer { client.close(); server.close() }
        let chunk = ReplicationFrame.snapshotChunk([UInt8](repeating: 7, count: 1 << 20))
        var outcome: TransportError?
        for _ in 0..<512 {
            outcome = transportError { () throws(TransportError) in try client.send(chunk) }
            if outcome != nil { break }
        }
        #expect(outcome == .timedOut)
        // A failed send closes the connection: the peer may hold half a frame.
        #expect(transportError { () throws(TransportError) in try client.send(.startSegment(generation: 1)) } == .closed)
    }
}

// MARK: - TCP only

@Suite struct TCPTransportTests {
    @Test func portZeroReportsTheRealPort() throws {
        let listener = try TCPReplicationListener(address: "127.0.0.1:0")
        defer { listener.close() }
        #expect(listener.port > 0)
        #expect(listener.address == "127.0.0.1:\(listener.port)")
        let client = try TCPReplicationDialer(address: "localhost:\(listener.port)").connect(timeout: .seconds(5))
        defer { client.close() }
        let server = try listener.accept()
        defer { server.close() }
        #expect(client.peer == "127.0.0.1:\(listener.port)")
        #expect(server.peer.hasPrefix("127.0.0.1:"))
    }

    @Test func everyInterfaceAcceptsIPv4() throws {
        let listener = try TCPReplicationListener(address: ":0")
        defer { listener.close() }
        #expect(listener.port > 0)
        let client = try TCPReplicationDialer(address: "127.0.0.1:\(listener.port)").connect(timeout: .seconds(5))
        defer { client.close() }
        let server = try listener.accept()
        defer { server.close() }
        try client.send(.startSegment(generation: 5))
        #expect(try server.receive(timeout: .seconds(5)) == .startSegment(generation: 5))
    }

    @Test func connectingToAClosedPortFails() throws {
        let listener = try TCPReplicationListener(address: "127.0.0.1:0")
        let port = listener.port
        listener.close()
        let error = transportError { () throws(TransportError) in
            try TCPReplicationDialer(address: "127.0.0.1:\(port)").connect(timeout: .seconds(5))
        }
        #expect(error == .io(operation: "connect", errno: ECONNREFUSED))
        #expect(error?.description.contains("refused") == true)
    }

    @Test func aClosedListenerFreesItsPort() throws {
        let first = try TCPReplicationListener(address: "127.0.0.1:0")
        let port = first.port
        first.close()
        let second = try TCPReplicationListener(address: "127.0.0.1:\(port)")
        defer { second.close() }
        #expect(second.port == port)
    }

    @Test func aPortInUseIsRefused() throws {
        let first = try TCPReplicationListener(address: "127.0.0.1:0")
        defer { first.close() }
        #expect(transportError { () throws(TransportError) in try TCPReplicationListener(address: "127.0.0.1:\(first.port)") }
            == .io(operation: "bind", errno: EADDRINUSE))
    }

    @Test(arguments: ["nonsense", "host:port", "127.0.0.1:99999", "::1:9090", "no.such.host.invalid:9090"])
    func invalidAddresses(_ address: String) {
        let listen = transportError { () throws(TransportError) in try TCPReplicationListener(address: address) }
        let dial = transportError { () throws(TransportError) in try TCPReplicationDialer(address: address).connect(timeout: .seconds(2)) }
        for error in [listen, dial] {
            guard case .invalidAddress = error else {
                Issue.record("\(address): expected .invalidAddress, got \(String(describing: error))")
                continue
            }
        }
    }

    @Test func ipv6LoopbackWhenAvailable() throws {
        guard let listener = try? TCPReplicationListener(address: "[::1]:0") else { return }  // no IPv6 here
        defer { listener.close() }
        #expect(listener.address == "[::1]:\(listener.port)")
        let client = try TCPReplicationDialer(address: "[::1]:\(listener.port)").connect(timeout: .seconds(5))
        defer { client.close() }
        let server = try listener.accept()
        defer { server.close() }
        try server.send(.ack(ReplicationPosition(generation: 1, offset: 2)))
        #expect(try client.receive(timeout: .seconds(5)) == .ack(ReplicationPosition(generation: 1, offset: 2)))
    }
}

// MARK: - In memory only

@Suite struct InMemoryTransportTests {
    @Test func connectionsQueueUntilAccepted() throws {
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener(address: "primary")
        defer { listener.close() }
        let dialer = network.makeDialer(address: "primary")
        #expect(dialer.target == "primary")
        let first = try dialer.connect(timeout: .seconds(1))
        let second = try dialer.connect(timeout: .seconds(1))
        try first.send(.startSegment(generation: 1))  // buffered before anyone accepts
        try second.send(.startSegment(generation: 2))
        #expect(try listener.accept().receive(timeout: .seconds(1)) == .startSegment(generation: 1))
        #expect(try listener.accept().receive(timeout: .seconds(1)) == .startSegment(generation: 2))
    }

    @Test func namesAreRefusedWhileInUseAndFreedOnClose() throws {
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener()
        #expect(listener.address == "memory")
        #expect(listener.port == 0)
        #expect(transportError { () throws(TransportError) in try network.makeListener() } == .io(operation: "listen", errno: EADDRINUSE))
        let waiting = try network.makeDialer().connect(timeout: .seconds(1))
        listener.close()
        // A connection never accepted is closed with its listener.
        #expect(transportError { () throws(TransportError) in try waiting.receive(timeout: .seconds(1)) } == .peerClosed)
        #expect(transportError { () throws(TransportError) in try network.makeDialer().connect(timeout: .seconds(1)) }
            == .io(operation: "connect", errno: ECONNREFUSED))
        let again = try network.makeListener()
        again.close()
    }

    @Test func nobodyListeningIsRefused() {
        let network = InMemoryReplicationNetwork()
        #expect(transportError { () throws(TransportError) in try network.makeDialer(address: "elsewhere").connect(timeout: .seconds(1)) }
            == .io(operation: "connect", errno: ECONNREFUSED))
    }

    @Test func sendRawInjectsAnyBytes() throws {
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener()
        defer { listener.close() }
        let client = try network.makeDialer().connect(timeout: .seconds(1))
        let server = try listener.accept()
        let raw = try #require(client as? InMemoryReplicationConnection)
        let valid = ReplicationFrameEncoder.encode(.ack(ReplicationPosition(generation: 1, offset: 5)))
        try raw.sendRaw(Array(valid.prefix(3)))  // half a frame, then the rest
        try raw.sendRaw(Array(valid.dropFirst(3)) + [0xEE])
        #expect(try server.receive(timeout: .seconds(1)) == .ack(ReplicationPosition(generation: 1, offset: 5)))
        #expect(transportError { () throws(TransportError) in try server.receive(timeout: .seconds(1)) } == .frame(.unknownFrameType(0xEE)))
        #expect(client.peer == "memory#1")
        #expect(server.peer == "memory#1")
    }

    @Test func sendingToAClosedPeerFails() throws {
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener()
        defer { listener.close() }
        let client = try network.makeDialer().connect(timeout: .seconds(1))
        let server = try listener.accept()
        server.close()
        #expect(transportError { () throws(TransportError) in try client.send(.startSegment(generation: 1)) } == .peerClosed)
    }
}
