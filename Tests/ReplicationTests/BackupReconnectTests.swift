import Dispatch
import Foundation
import Platform
import Synchronization
import Testing
@testable import Replication
import StorageEngine
import WireProtocol

// A backup whose connection falls silent while its primary is alive (the loss of a flaky link
// backing TCP off for seconds) drops it and dials a fresh one well before its heartbeat timeout;
// only silence on every connection for the whole timeout promotes it (BackupFollower).

/// A dialer whose connections can be made silent, as a connection stuck in TCP's retransmission
/// backoff is: a stalled connection delivers nothing either way (frames the primary sent are
/// dropped, frames to it are swallowed) until it is closed. `stallCurrentConnections` stalls the
/// ones made so far (later ones work); `stallEveryConnection` also every later one, from its
/// first frame on.
final class StallingDialer: ReplicationDialer {
    let inner: any ReplicationDialer
    var target: String { inner.target }
    private struct State {
        var connections: [StallableConnection] = []
        var stallNewConnections = false
    }
    private let state = Lock(State())

    init(_ inner: any ReplicationDialer) {
        self.inner = inner
    }

    func connect(timeout: Duration) throws(TransportError) -> any ReplicationConnection {
        let connection = StallableConnection(try inner.connect(timeout: timeout))
        state.withLock { state in
            if state.stallNewConnections { connection.stall() }
            state.connections.append(connection)
        }
        return connection
    }

    /// Connections made so far (only grows).
    var connectionsMade: Int { state.withLock { $0.connections.count } }

    func stallCurrentConnections() {
        for connection in state.withLock({ $0.connections }) { connection.stall() }
    }

    func stallEveryConnection() {
        let current = state.withLock { state in
            state.stallNewConnections = true
            return state.connections
        }
        for connection in current { connection.stall() }
    }
}

final class StallableConnection: ReplicationConnection {
    private let inner: any ReplicationConnection
    private let stalled = Atomic<Bool>(false)
    /// Signalled once by `close`: wakes a receive waiting out its timeout on a stalled connection.
    private let closed = DispatchSemaphore(value: 0)
    private let isClosed = Atomic<Bool>(false)
    /// The inner connection's `lastReceipt` when it stalled: what it takes from then on is lost.
    private let receiptAtStall = Lock<ContinuousClock.Instant?>(nil)

    init(_ inner: any ReplicationConnection) {
        self.inner = inner
    }

    var peer: String { inner.peer }

    func stall() {
        receiptAtStall.withLock { $0 = inner.lastReceipt }
        stalled.store(true, ordering: .sequentiallyConsistent)
    }
    private var isStalled: Bool { stalled.load(ordering: .sequentiallyConsistent) }

    func send(_ frame: ReplicationFrame, timeout: Duration?) throws(TransportError) {
        if isStalled { return }
        try inner.send(frame, timeout: timeout)
    }

    func send(encoded: UnsafeRawBufferPointer, timeout: Duration?) throws(TransportError) {
        if isStalled { return }
        try inner.send(encoded: encoded, timeout: timeout)
    }

    func receive(timeout: Duration?) throws(TransportError) -> ReplicationFrame {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            if isStalled {
                // Nothing arrives: wait out the timeout (or the close).
                let remaining = deadline.map { max(.zero, $0 - .now) }
                let woken = remaining.map { closed.wait(timeout: .now() + dispatchInterval($0)) } ?? { closed.wait(); return .success }()
                if woken == .success || isClosed.load(ordering: .sequentiallyConsistent) {
                    closed.signal()  // for any other waiter
                    throw .closed
                }
                throw .timedOut
            }
            let frame = try inner.receive(timeout: deadline.map { max(.zero, $0 - .now) })
            if !isStalled { return frame }
            // Stalled while it was on its way: lost like the rest.
        }
    }

    func close() {
        inner.close()
        if !isClosed.exchange(true, ordering: .sequentiallyConsistent) { closed.signal() }
    }

    func limitIncomingPayloads(to bytes: Int) { inner.limitIncomingPayloads(to: bytes) }
    var lastReceipt: ContinuousClock.Instant? { isStalled ? receiptAtStall.withLock { $0 } : inner.lastReceipt }
}

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite("A backup whose connection falls silent (in-memory transport)")
struct BackupReconnectTests {
    /// 2 s: 40 of the primary's 50 ms heartbeats, so that a loaded machine does not starve the
    /// heartbeat past it (see `aBackupPromotesItselfWhenThePrimaryFallsSilent`); the backup then
    /// drops a silent connection after 0.67 s (a third of it).
    static let heartbeatTimeout = Duration.seconds(2)

    /// The connection the backup follows on goes silent while the primary is alive and writing:
    /// the backup drops it after `silenceBeforeReconnect`, follows on a fresh connection from its
    /// position, catches up with what was written meanwhile, and does not promote itself, also
    /// well past the heartbeat timeout counted from the stall.
    @Test func aBackupReconnectsWhenItsConnectionFallsSilentAndDoesNotPromote() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = BackupReconnectTests.heartbeatTimeout }
        let dialer = StallingDialer(network.makeDialer(address: "p"))
        try primary.startPrimary()
        defer { primary.stop() }
        try backup.startBackup(dialer: dialer)
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("before", v("1"))
        #expect(try backup.database.get("before") == v("1"))

        dialer.stallCurrentConnections()
        let stalled = ContinuousClock.now
        // Acknowledged once the backup's fresh connection replaces the stalled one on the primary.
        try await primary.database.put("during", v("2"))
        #expect(try await eventually { primary.inSyncAsPrimary && backup.database.logPosition == primary.database.logPosition })
        #expect(dialer.connectionsMade >= 2)
        #expect(try backup.database.get("during") == v("2"))
        try await primary.database.put("after", v("3"))  // in sync again: on the backup once acknowledged
        #expect(try backup.database.get("after") == v("3"))

        // The watcher has looked, and decided, well past the heartbeat timeout after the stall.
        let pastTimeout = stalled + BackupReconnectTests.heartbeatTimeout * 1.5
        #expect(try await eventually { backup.lastSilenceCheck.map { $0 >= pastTimeout } ?? false })
        #expect(backup.node.role == .backup)
        #expect(backup.node.status.promotions == 0)
    }

    /// Every connection silent, the one it followed on and each fresh one from its first frame:
    /// the backup keeps dialling, and promotes itself once nothing has come on any of them for the
    /// heartbeat timeout, counted from the last frame of the old connection (a fresh connection is
    /// no contact), not earlier.
    @Test func aBackupWhoseEveryConnectionStaysSilentPromotesAfterTheHeartbeatTimeout() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = BackupReconnectTests.heartbeatTimeout }
        let dialer = StallingDialer(network.makeDialer(address: "p"))
        try primary.startPrimary()
        defer { primary.stop() }
        try backup.startBackup(dialer: dialer)
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("before", v("1"))
        let follower = try #require(backup.node.state.withLock { $0.follower })

        dialer.stallEveryConnection()
        let stalled = ContinuousClock.now
        #expect(try await eventually { backup.node.role == .primary })
        let promoted = ContinuousClock.now
        let lastContact = try #require(follower.view.lastContact)
        #expect(lastContact <= stalled, "a fresh, silent connection counted as contact")
        #expect(promoted - lastContact >= BackupReconnectTests.heartbeatTimeout)
        #expect(dialer.connectionsMade >= 2, "it did not try fresh connections before promoting: \(dialer.connectionsMade)")
        #expect(backup.node.status.promotions == 1)
        #expect(try backup.database.get("before") == v("1"))
    }

    /// A frame that arrives a byte at a time, over longer than the heartbeat timeout (a large
    /// frame on a slow link), from a stand-in primary: the backup neither drops the connection
    /// nor promotes itself while its bytes keep coming, and takes the frame once it is whole.
    @Test func aFrameStillArrivingIsNotSilence() async throws {
        let heartbeatTimeout = Duration.seconds(4)  // a reconnect after 1.33 s without a byte
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener(address: "p")
        defer { listener.close() }
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = heartbeatTimeout }
        let dialer = StallingDialer(network.makeDialer(address: "p"))
        let heartbeat = ReplicationFrameEncoder.encode(.heartbeat(epoch: 0, position: ReplicationPosition(generation: 0, offset: 0)))
        let pace = 0.2  // seconds per byte: the fault itself (a sleep as the fault, not as a wait)
        #expect(Duration.seconds(pace * Double(heartbeat.count)) > heartbeatTimeout * 1.2, "the frame must take longer than the timeout")
        let trickleStarted = Lock<ContinuousClock.Instant?>(nil)
        let trickled = Atomic<Bool>(false)
        let standIn = Thread {
            // Welcome the backup, then send one heartbeat a byte at a time, at once (on this
            // thread: the first byte must come well within the reconnect silence).
            do throws(TransportError) {
                let primary = try listener.accept()
                defer { primary.close() }
                guard case .hello = try primary.receive(timeout: .seconds(10)) else { return }
                try primary.send(.welcome(Welcome(epoch: 0, lineage: .random(), history: [], mode: .stream)))
                trickleStarted.withLock { $0 = .now }
                for byte in heartbeat {
                    try (primary as? InMemoryReplicationConnection)?.sendRaw([byte])
                    Thread.sleep(forTimeInterval: pace)
                }
                trickled.store(true, ordering: .releasing)
            } catch {}
        }
        try backup.startBackup(dialer: dialer)
        defer { backup.stop() }
        standIn.start()

        #expect(try await eventually(timeout: .seconds(60)) { backup.followerView?.primaryPosition != nil })
        let started = try #require(trickleStarted.withLock { $0 })
        #expect(ContinuousClock.now - started > heartbeatTimeout)
        #expect(backup.node.role == .backup)
        #expect(backup.node.status.promotions == 0)
        #expect(dialer.connectionsMade == 1, "the backup dropped a connection whose frame was still arriving")
        #expect(try await eventually { trickled.load(ordering: .acquiring) })
    }

    /// A fresh connection whose welcome comes later than `silenceBeforeReconnect` but before the
    /// promotion is due (each lost segment of a new TCP connection costs its 1 s initial
    /// retransmission timeout): the backup waits for it instead of starting over, and follows.
    /// (On the network fault tests' lossy link, a backup that gave up on such a welcome promoted
    /// itself.)
    @Test func aFreshConnectionsSlowWelcomeIsAwaitedWhileTimeRemains() async throws {
        let heartbeatTimeout = Duration.seconds(4)  // a reconnect after 1.33 s of silence
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener(address: "p")
        defer { listener.close() }
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = heartbeatTimeout }
        let dialer = StallingDialer(network.makeDialer(address: "p"))
        let lateWelcomeSent = Atomic<Bool>(false)
        let stopped = Atomic<Bool>(false)
        let lineage = Lineage.random()
        let standIn = Thread {
            // A primary that goes silent on the first connection and answers the second one's
            // hello 2 s late (the pause is the fault), then sends heartbeats.
            do throws(TransportError) {
                let first = try listener.accept()
                defer { first.close() }
                guard case .hello = try first.receive(timeout: .seconds(10)) else { return }
                try first.send(.welcome(Welcome(epoch: 0, lineage: lineage, history: [], mode: .stream)))
                let second = try listener.accept()
                defer { second.close() }
                guard case .hello = try second.receive(timeout: .seconds(10)) else { return }
                Thread.sleep(forTimeInterval: 2)
                try second.send(.welcome(Welcome(epoch: 0, lineage: lineage, history: [], mode: .stream)))
                lateWelcomeSent.store(true, ordering: .releasing)
                while !stopped.load(ordering: .acquiring) {
                    try second.send(.heartbeat(epoch: 0, position: ReplicationPosition(generation: 0, offset: 0)))
                    Thread.sleep(forTimeInterval: 0.1)
                }
            } catch {}
        }
        defer { stopped.store(true, ordering: .releasing) }
        try backup.startBackup(dialer: dialer)
        defer { backup.stop() }
        standIn.start()

        #expect(try await eventually(timeout: .seconds(30)) { lateWelcomeSent.load(ordering: .acquiring) })
        #expect(try await eventually { backup.followerView.map { $0.connected && $0.sessionsEnded == 1 } ?? false })
        #expect(dialer.connectionsMade == 2, "the backup gave up on the fresh connection before its welcome came")
        #expect(backup.node.role == .backup)
    }

    @Test func theSilenceBeforeAReconnectLeavesRoomForFreshTriesBeforeThePromotion() {
        func limit(_ timeout: Duration, _ interval: Duration) -> Duration {
            BackupFollower.silenceBeforeReconnect(heartbeatTimeout: timeout, heartbeatInterval: interval)
        }
        #expect(limit(.seconds(5), .seconds(1)) == .milliseconds(2500))  // the defaults: at most half
        #expect(limit(.seconds(10), .milliseconds(100)) == .seconds(10) / 3)  // a third
        #expect(limit(.seconds(10), .seconds(2)) == .seconds(5))  // three intervals would be 6 s: half
        #expect(limit(.seconds(30), .seconds(3)) == .seconds(10))  // a third (three intervals are 9 s)
        #expect(limit(.seconds(30), .seconds(4)) == .seconds(12))  // three intervals
        #expect(limit(.zero, .seconds(1)) == BackupFollower.silenceLimitWithoutPromotion)
    }
}
