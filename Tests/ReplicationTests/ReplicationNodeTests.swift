import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization
import Testing
@testable import Replication
import StorageEngine
import WireProtocol
import StorageEngineTesting

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. The pause
/// between polls only paces the loop: the outcome depends on the condition, not on timing.
func eventually(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// One node of a test cluster: an in-memory store, its database and its replication node.
final class TestNode: @unchecked Sendable {
    let store: FaultInjectingStore
    let name: String
    let network: InMemoryReplicationNetwork
    var configuration: ReplicationConfiguration
    /// What the node logged (unless a test gave it a log of its own): for failure messages.
    let logs = LogRecorder()
    private(set) var database: Database!
    private(set) var node: ReplicationNode!

    init(_ name: String, network: InMemoryReplicationNetwork, store: FaultInjectingStore = FaultInjectingStore(),
         configure: (inout ReplicationConfiguration) -> Void = { _ in }) {
        self.name = name
        self.store = store
        self.network = network
        var configuration = ReplicationConfiguration()
        configuration.heartbeatInterval = .milliseconds(50)
        configuration.heartbeatTimeout = .zero  // tests that want self-promotion set it
        configuration.ackTimeout = .seconds(5)
        // No spacing between snapshots (still one at a time): with the default 10 s, a backup
        // whose first snapshot attempt fails on a loaded machine (a detach mid-transfer) is
        // refused `busy` for 10 s, longer than any test here waits for it to come into sync.
        // The spacing itself has its own test, which sets it.
        configuration.minimumSnapshotInterval = .zero
        configuration.log = logs.log
        configuration.makeListener = { () throws(TransportError) in try network.makeListener(address: name) }
        configure(&configuration)
        self.configuration = configuration
    }

    private func open() throws {
        var options = DatabaseOptions.forTests
        options.checkpoints.enabled = false
        node = ReplicationNode(configuration: configuration)
        database = try Database.open(logStore: store, snapshotStore: store, options: options, replicationSink: node)
    }

    func startPrimary() throws {
        try open()
        try node.startAsPrimary(database: database)
    }

    func startBackup(of primary: String) throws {
        try open()
        try node.startAsBackup(database: database, dialer: network.makeDialer(address: primary))
    }

    func stop() {
        node?.stop()
        database?.close()
    }

    var inSyncAsPrimary: Bool { node.status.role == .primary && node.status.inSync }
    var followerView: BackupFollower.View? { node.state.withLock { $0.follower }?.view }
    var lastSilenceCheck: ContinuousClock.Instant? { followerView?.lastSilenceCheck }
}

/// Log lines a node wrote, for tests that check what it said.
final class LogRecorder: Sendable {
    private let lines = Lock<[String]>([])
    var log: @Sendable (LogLevel, String) -> Void { { [self] _, line in lines.withLock { $0.append(line) } } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
}

/// A primary "p" and a backup "b" of it on a new in-memory network, the backup in sync.
func startPairInSync() async throws -> (primary: TestNode, backup: TestNode) {
    let network = InMemoryReplicationNetwork()
    let primary = TestNode("p", network: network)
    let backup = TestNode("b", network: network)
    try primary.startPrimary()
    try backup.startBackup(of: "p")
    guard try await eventually({ primary.inSyncAsPrimary }) else {
        backup.stop()
        primary.stop()
        throw ReplicationFailure("the backup never came into sync; primary: \(primary.logs.all); backup: \(backup.logs.all)")
    }
    return (primary, backup)
}

@Suite("Replication between two nodes in one process (in-memory transport)")
struct ReplicationNodeTests {
    @Test func writesReplicateAndEveryAcknowledgedWriteIsAlreadyOnTheBackup() async throws {
        let (primary, backup) = try await startPairInSync()
        defer { backup.stop(); primary.stop() }

        for index in 0..<100 {
            try await primary.database.put(Key("k\(index)"), v("value-\(index)"))
            // The output rule: acknowledged means the backup holds it (durable and applied).
            #expect(try backup.database.get(Key("k\(index)")) == v("value-\(index)"))
        }
        try await primary.database.delete("k7")
        #expect(try backup.database.get("k7") == nil)
        #expect(backup.node.writeRefusal == .backup)
        #expect(primary.node.writeRefusal == nil)
        #expect(backup.database.logPosition == primary.database.logPosition)
        #expect(backup.store.contents(of: "logfile.0") == primary.store.contents(of: "logfile.0"))

        // What the backup acknowledged survives its power loss.
        backup.stop()
        _ = backup.store.powerLoss()
        backup.store.powerOn()
        let reopened = try Database.open(logStore: backup.store, snapshotStore: backup.store, options: .forTests)
        defer { reopened.close() }
        #expect(reopened.stats.keys == 99)
        #expect(try reopened.get("k99") == v("value-99"))
    }

    @Test func aNewBackupCatchesUpFromTheLogWithoutASnapshot() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        for index in 0..<50 { try await primary.database.put(Key("early\(index)"), v("x")) }

        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("late", v("y"))  // acknowledged: the backup has everything before it
        #expect(try backup.database.get("early49") == v("x"))
        #expect(try backup.database.get("late") == v("y"))
        #expect(primary.node.status.resyncs == 0)
        #expect(backup.node.status.resyncs == 0)
    }

    @Test func aBackupBehindTheLastCheckpointGetsASnapshotThenTheStream() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        for index in 0..<50 { try await primary.database.put(Key("k\(index)"), v("x")) }
        _ = try await primary.database.checkpoint()
        try await primary.database.put("after", v("checkpoint"))
        _ = try await primary.database.checkpoint()

        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("streamed", v("z"))  // acknowledged: the backup has everything before it
        #expect(backup.node.status.resyncs == 1)
        #expect(primary.node.status.resyncs == 1)
        #expect(try backup.database.get("k49") == v("x"))
        #expect(try backup.database.get("after") == v("checkpoint"))
        #expect(try backup.database.get("streamed") == v("z"))
        #expect(backup.database.stats.keys == primary.database.stats.keys)
        #expect(backup.database.logPosition == primary.database.logPosition)
    }

    @Test func thePrimarysCheckpointsAreMirroredAtTheSamePosition() async throws {
        let (primary, backup) = try await startPairInSync()
        defer { backup.stop(); primary.stop() }
        for round in 0..<3 {
            for index in 0..<20 { try await primary.database.put(Key("r\(round)k\(index)"), v("\(round)")) }
            _ = try await primary.database.checkpoint()
        }
        try await primary.database.put("last", v("1"))
        #expect(backup.database.logPosition == primary.database.logPosition)
        #expect(backup.database.logPosition.generation == 3)
        #expect(try await eventually { backup.database.stats.generation == 3 })
        #expect(backup.store.contents(of: "logfile.3") == primary.store.contents(of: "logfile.3"))
        // The backup's old segments went with its mirrored checkpoints: its log does not grow forever.
        #expect(try await eventually { (try? backup.database.logGenerations()) == [3] })
    }

    @Test func aRestartedBackupResumesFromItsPositionWithoutASnapshot() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        let backup = TestNode("b", network: network)
        try primary.startPrimary()
        try backup.startBackup(of: "p")
        defer { primary.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        for index in 0..<20 { try await primary.database.put(Key("a\(index)"), v("1")) }
        backup.stop()
        for index in 0..<20 { try await primary.database.put(Key("b\(index)"), v("2")) }  // alone meanwhile

        let again = TestNode("b", network: network, store: backup.store)
        try again.startBackup(of: "p")
        defer { again.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("sync", v("point"))  // acknowledged: the backup has everything before it
        #expect(try again.database.get("b19") == v("2"))
        #expect(primary.node.status.resyncs == 0)
        // (Once 2 under ASan, with no log to say which session went and why: the logs are here now.)
        #expect(primary.node.status.detaches == 1, "primary: \(primary.logs.all)\nbackup: \(again.logs.all)")
    }

    @Test func promoteTurnsABackupIntoAWritablePrimaryWithTheNextEpoch() async throws {
        let (primary, backup) = try await startPairInSync()
        defer { backup.stop(); primary.stop() }
        try await primary.database.put("k", v("1"))
        primary.stop()

        #expect(backup.node.promote(reason: "test") == .promoted(epoch: 1))
        #expect(backup.node.promote(reason: "again") == .alreadyPrimary(epoch: 1))
        #expect(backup.node.writeRefusal == nil)
        #expect(backup.node.status.promotions == 1)
        try await backup.database.put("k2", v("2"))
        #expect(try backup.database.get("k") == v("1"))
        let state = try ReplicationStateCodec.decode(try #require(try backup.database.readReplicationMetadata()))
        #expect(state.epoch == 1)
        #expect(state.history.last?.epoch == 1)
    }

    @Test func aBackupPromotesItselfWhenThePrimaryFallsSilent() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        // 40 heartbeat intervals (50 ms). With 300 ms (6 intervals), a full parallel run on 2 cores
        // stalled the heartbeat or the follower thread past the timeout: the backup promoted
        // itself while its primary was alive, as it should, and the test failed. The claim is
        // about heartbeats, not about how fast an overloaded machine schedules threads.
        let heartbeatTimeout = Duration.seconds(2)
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = heartbeatTimeout }
        try primary.startPrimary()
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("k", v("1"))
        // Heartbeats keep an idle backup from promoting: the watcher has looked, and decided,
        // well past the timeout after the last write.
        let idleSince = ContinuousClock.now
        #expect(try await eventually { backup.lastSilenceCheck.map { $0 >= idleSince + heartbeatTimeout * 1.5 } ?? false })
        #expect(backup.node.role == .backup)
        primary.stop()
        #expect(try await eventually { backup.node.role == .primary })
        #expect(backup.node.epoch == 1)
        try await backup.database.put("k2", v("2"))
    }

    @Test func aBackupThatNeverReachedItsPrimaryDoesNotPromoteItself() async throws {
        let network = InMemoryReplicationNetwork()
        let backup = TestNode("b", network: network) { $0.heartbeatTimeout = .milliseconds(100) }
        try backup.startBackup(of: "nobody")
        defer { backup.stop() }
        // The silence watcher has looked, and decided, well past the timeout (a state that lasts).
        let pastTimeout = ContinuousClock.now + .milliseconds(300)
        #expect(try await eventually { backup.lastSilenceCheck.map { $0 >= pastTimeout } ?? false })
        #expect(backup.node.role == .backup)
    }

    @Test func aStalledBackupIsDetachedAfterTheAckTimeoutAndThePrimaryGoesOn() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network) { $0.ackTimeout = .milliseconds(200) }
        try primary.startPrimary()
        defer { primary.stop() }
        // A backup that says hello, then never acknowledges anything.
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { connection.close() }
        try connection.send(.hello(Hello(
            protocolVersion: ReplicationProtocol.version, epoch: 0, lineage: nil,
            position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: CRC32.checksum([UInt8]()))))
        guard case .welcome = try connection.receive(timeout: .seconds(5)) else {
            Issue.record("no welcome")
            return
        }
        #expect(try await eventually { primary.inSyncAsPrimary })
        let started = ContinuousClock.now
        try await primary.database.put("k", v("1"))  // acknowledged once the backup is detached
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        #expect(primary.node.status.detaches == 1)
        #expect(!primary.node.status.connected)
        try await primary.database.put("k2", v("2"))  // alone now: no wait
        #expect(primary.node.writeRefusal == nil)
    }

    @Test func withRequiredSyncAWriteNobodyConfirmedIsRefused() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network) {
            $0.ackTimeout = .milliseconds(200)
            $0.syncMode = .required
        }
        try primary.startPrimary()
        defer { primary.stop() }
        #expect(primary.node.writeRefusal == .noBackupInSync)
        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        #expect(try await eventually { primary.node.writeRefusal == nil })
        try await primary.database.put("k", v("1"))
        backup.stop()
        // The engine refuses the acknowledgement once the backup is gone.
        await #expect(throws: DatabaseError.self) { try await primary.database.put("k2", v("2")) }
        #expect(primary.node.writeRefusal == .noBackupInSync)
    }

    @Test func aHelloWithoutALineageNeverFencesThePrimary() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { connection.close() }
        try connection.send(.hello(Hello(
            protocolVersion: ReplicationProtocol.version, epoch: 7, lineage: nil,
            position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: 0)))
        guard case .refuse(let refusal) = try connection.receive(timeout: .seconds(5)) else {
            Issue.record("an epoch without a lineage was not refused")
            return
        }
        #expect(refusal.code == .protocolViolation)
        #expect(primary.node.writeRefusal == nil)
        #expect(primary.node.status.fencedBy == nil)
        #expect(primary.node.state.withLock { $0.fencingClaimsRefused } == 1)
        try await primary.database.put("still", v("writable"))
    }

    @Test func aNewerEpochOfTheLineageWhoseHistoryDoesNotFitDoesNotFence() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        try await primary.database.put("k", v("1"))
        let lineage = try ReplicationStateCodec.decode(try #require(try primary.database.readReplicationMetadata())).lineage
        let end = ReplicationPosition(primary.database.logPosition)
        let misfits: [(String, position: ReplicationPosition, epochStart: ReplicationPosition?)] = [
            ("no start", end, nil),
            ("begun past this log's end", ReplicationPosition(generation: 5, offset: 10), ReplicationPosition(generation: 5, offset: 0)),
            ("a log that ends before its epoch began", ReplicationPosition(generation: 0, offset: 0), end),
        ]
        for (index, misfit) in misfits.enumerated() {
            let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
            defer { connection.close() }
            try connection.send(.hello(Hello(
                epoch: 9, lineage: lineage, position: misfit.position, prefixCRC: 0, epochStart: misfit.epochStart)))
            guard case .refuse(let refusal) = try connection.receive(timeout: .seconds(5)) else {
                Issue.record("\(misfit.0): not refused")
                continue
            }
            #expect(refusal.code == .protocolViolation, "\(misfit.0)")
            #expect(primary.node.status.fencedBy == nil, "\(misfit.0)")
            #expect(primary.node.state.withLock { $0.fencingClaimsRefused } == index + 1)
        }
        try await primary.database.put("still", v("writable"))
    }

    @Test func aPrimaryMeetingANewerEpochOfItsLineageWithAFittingHistoryStepsDown() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        try await primary.database.put("k", v("1"))
        let lineage = try ReplicationStateCodec.decode(try #require(try primary.database.readReplicationMetadata())).lineage
        // Its backup, promoted at this log's end (epoch 1 there), has written since.
        let end = ReplicationPosition(primary.database.logPosition)
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { connection.close() }
        try connection.send(.hello(Hello(
            epoch: 1, lineage: lineage, position: ReplicationPosition(generation: end.generation, offset: end.offset + 40),
            prefixCRC: 0, epochStart: end)))
        guard case .refuse(let refusal) = try connection.receive(timeout: .seconds(5)) else {
            Issue.record("a newer epoch was not refused")
            return
        }
        #expect(refusal.code == .newerEpoch)
        #expect(primary.node.writeRefusal == .fenced(newerEpoch: 1))
    }

    @Test func snapshotsForBackupsAreOneAtATimeAndSpacedByTheInterval() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network) { $0.minimumSnapshotInterval = .seconds(3600) }
        try primary.startPrimary()
        defer { primary.stop() }
        try await primary.database.put("k", v("1"))
        let generation = primary.database.stats.generation
        // Peers of another lineage: each needs a snapshot (a checkpoint).
        var refusals: [Refusal] = []
        for _ in 0..<6 {
            let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
            defer { connection.close() }
            try connection.send(.hello(Hello(
                epoch: 0, lineage: .random(), position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: 0)))
            readFrames: while true {
                switch try connection.receive(timeout: .seconds(10)) {
                case .refuse(let refusal):
                    refusals.append(refusal)
                    break readFrames
                case .snapshotEnd: break readFrames
                default: continue
                }
            }
            // The primary releases the one-at-a-time claim just after it sends snapshotEnd, and
            // counts the resync just after that: wait for the count, or the next peer may meet the
            // claim still held ("another snapshot is being sent") instead of the interval.
            if refusals.isEmpty { #expect(try await eventually { primary.node.status.resyncs == 1 }) }
        }
        #expect(refusals.count == 5)
        #expect(refusals.allSatisfy { $0.code == .busy && $0.message.contains("-repl-snapshot-interval") })
        #expect(primary.database.stats.generation == generation + 1)  // one checkpoint, not six
        #expect(primary.node.status.resyncs == 1)
    }

    @Test(.timeLimit(.minutes(10)))
    func beforeItsHelloAPeerCannotMakeThePrimaryBufferALargeFrame() async throws {
        let network = InMemoryReplicationNetwork()
        let logs = LogRecorder()
        let primary = TestNode("p", network: network) {
            // Far beyond the wait below, even on a pool starved by a sanitizer: only the limit can end it.
            $0.handshakeTimeout = .seconds(3600)
            $0.log = logs.log
        }
        try primary.startPrimary()
        defer { primary.stop() }
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { connection.close() }
        // The header of a 64 MiB snapshot chunk, then the first MiB of it.
        var header: [UInt8] = [5]
        header.appendLittleEndian(UInt32(64 << 20))
        let raw = try #require(connection as? InMemoryReplicationConnection)
        try raw.sendRaw(header + [UInt8](repeating: 0, count: 1 << 20))
        #expect(transportError { () throws(TransportError) in try connection.receive(timeout: .seconds(20)) } == .peerClosed)
        #expect(logs.contains("exceeds the limit of \(ReplicationProtocol.maxPayloadSizeToPrimary)"))
    }

    /// The handshakes must last until the test closes them: `handshaking == 2` is polled as a
    /// state that lasts (with 120 s, a run under AddressSanitizer starved the poll for longer, the
    /// handshakes timed out first and the test failed). The time limit keeps a regression from
    /// waiting out the hour.
    @Test(.timeLimit(.minutes(10)))
    func connectionsInTheirHandshakeAreCappedAndTheRestClosedAtAccept() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network) {
            $0.handshakeTimeout = .seconds(3600)
            $0.maxHandshakingConnections = 2
        }
        try primary.startPrimary()
        defer { primary.stop() }
        let silent = try (0..<2).map { _ in try network.makeDialer(address: "p").connect(timeout: .seconds(1)) }
        #expect(try await eventually(timeout: .seconds(60)) { primary.node.state.withLock { $0.handshaking } == 2 })
        let third = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { third.close() }
        #expect(transportError { () throws(TransportError) in try third.receive(timeout: .seconds(20)) } == .peerClosed)
        #expect(primary.node.state.withLock { $0.connectionsRefusedAtAccept } == 1)
        // Once one of them goes, a backup is served again.
        silent[0].close()
        silent[1].close()
        #expect(try await eventually(timeout: .seconds(60)) { primary.node.state.withLock { $0.handshaking } == 0 })
        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
    }

    @Test func aThreadThatCannotBeMadeClosesTheConnectionInsteadOfTrapping() async throws {
        let network = InMemoryReplicationNetwork()
        let logs = LogRecorder()
        let outOfThreads = Atomic<Bool>(false)
        let primary = TestNode("p", network: network) {
            $0.log = logs.log
            $0.startThread = { (body) throws(ThreadStartError) in
                if outOfThreads.load(ordering: .acquiring) { throw ThreadStartError(code: EAGAIN) }
                try tryStartDetachedThread(body)
            }
        }
        try primary.startPrimary()
        defer { primary.stop() }
        outOfThreads.store(true, ordering: .releasing)
        let refused = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { refused.close() }
        #expect(transportError { () throws(TransportError) in try refused.receive(timeout: .seconds(20)) } == .peerClosed)
        #expect(primary.node.state.withLock { $0.connectionsRefusedAtAccept } == 1)
        #expect(logs.contains("pthread_create failed"))
        outOfThreads.store(false, ordering: .releasing)
        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
    }

    @Test func aBackupRefusesAPrimaryWithAnOlderEpoch() async throws {
        let network = InMemoryReplicationNetwork()
        let stale = TestNode("p", network: network)
        try stale.startPrimary()
        defer { stale.stop() }
        // The backup's directory, of the same lineage, has seen epoch 3 (it was promoted, then
        // pointed back at the old primary by an operator).
        let lineage = try ReplicationStateCodec.decode(try #require(try stale.database.readReplicationMetadata())).lineage
        let backupStore = FaultInjectingStore()
        do {
            let db = try Database.open(logStore: backupStore, snapshotStore: backupStore, options: .forTests)
            try db.writeReplicationMetadata(ReplicationStateCodec.encode(ReplicationState(
                lineage: lineage, epoch: 3, history: [EpochStart(epoch: 3, start: ReplicationPosition(generation: 0, offset: 0))],
                role: .backup)))
            db.close()
        }
        let backup = TestNode("b", network: network, store: backupStore)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        // The stale primary sees the newer epoch in the hello and steps down; the backup never follows it.
        #expect(try await eventually { stale.node.writeRefusal == .fenced(newerEpoch: 3) })
        // Sessions after the fencing have ended too, each without a welcome.
        #expect(try await eventually { (backup.followerView?.sessionsEnded ?? 0) >= 3 })
        #expect(backup.followerView?.welcomed == false)
        #expect(backup.node.epoch == 3)
    }

    @Test func anOldPrimaryRejoiningAsABackupIsResyncedAndLosesWhatNobodyElseHad() async throws {
        let network = InMemoryReplicationNetwork()
        let a = TestNode("a", network: network) { $0.ackTimeout = .milliseconds(200) }
        let b = TestNode("b", network: network)
        try a.startPrimary()
        try b.startBackup(of: "a")
        #expect(try await eventually { a.inSyncAsPrimary })
        try await a.database.put("shared", v("1"))
        // Partition: b stops following; a goes on alone and takes a write b never sees.
        b.node.stop()
        try await a.database.put("only-on-a", v("lost"))
        a.stop()
        // b is promoted (epoch 1) and writes.
        let bAgain = TestNode("b", network: network, store: b.store)
        b.database.close()
        try bAgain.startBackup(of: "a")
        #expect(bAgain.node.promote(reason: "failover") == .promoted(epoch: 1))
        defer { bAgain.stop() }
        try await bAgain.database.put("after-failover", v("2"))

        // a comes back as b's backup: its log went past where epoch 0 ended on b, so it is resynced.
        let aAgain = TestNode("a", network: network, store: a.store)
        try aAgain.startBackup(of: "b")
        defer { aAgain.stop() }
        #expect(try await eventually { bAgain.inSyncAsPrimary })
        try await bAgain.database.put("sync", v("point"))  // acknowledged: a has everything before it
        #expect(aAgain.node.status.resyncs == 1)
        #expect(try aAgain.database.get("shared") == v("1"))
        #expect(try aAgain.database.get("after-failover") == v("2"))
        #expect(try aAgain.database.get("only-on-a") == nil)
        #expect(aAgain.node.epoch == 1)
    }

    @Test func garbageOnTheReplicationPortIsDroppedAndTheNextBackupIsServed() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        try #require(connection as? InMemoryReplicationConnection).sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(throws: TransportError.self) { _ = try connection.receive(timeout: .seconds(5)) }
        connection.close()
        try await primary.database.put("k", v("1"))

        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("sync", v("point"))  // acknowledged: the backup has everything before it
        #expect(try backup.database.get("k") == v("1"))
    }

    @Test func aBackupFromAnotherLineageIsResyncedNotMerged() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        try await primary.database.put("theirs", v("1"))

        // A directory from elsewhere, with data and a lineage of its own.
        let other = TestNode("o", network: network)
        try other.startPrimary()
        try await other.database.put("mine", v("2"))
        other.stop()

        let backup = TestNode("b", network: network, store: other.store)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("sync", v("point"))  // acknowledged: the backup has everything before it
        #expect(backup.node.status.resyncs == 1)
        #expect(try backup.database.get("mine") == nil)
        #expect(try backup.database.get("theirs") == v("1"))
    }

    @Test func aBackupDropsAPrimaryWhoseRecordsDoNotFitItsLogAndKeepsItsState() async throws {
        let network = InMemoryReplicationNetwork()
        let listener = try network.makeListener(address: "fake")
        defer { listener.close() }
        let backup = TestNode("b", network: network)
        try backup.startBackup(of: "fake")
        defer { backup.stop() }

        // A "primary" that welcomes the backup, then sends records for a position it does not have.
        let connection = try listener.accept()
        defer { connection.close() }
        guard case .hello(let hello) = try connection.receive(timeout: .seconds(5)) else {
            Issue.record("no hello")
            return
        }
        #expect(hello.position == ReplicationPosition(generation: 0, offset: 0))
        try connection.send(.welcome(Welcome(epoch: 0, lineage: .random(), history: [], mode: .stream)))
        var record: [UInt8] = []
        WALEncoder.append([.set(key: Array("k".utf8), value: Array("v".utf8))], to: &record)
        try connection.send(.records(at: ReplicationPosition(generation: 0, offset: 500), bytes: record))
        // The backup refuses to apply it and drops the connection (then reconnects: a new hello).
        #expect(throws: TransportError.self) {
            while true { _ = try connection.receive(timeout: .seconds(5)) }
        }
        #expect(try backup.database.get("k") == nil)
        #expect(backup.database.logPosition == LogPosition(generation: 0, offset: 0))
        let again = try listener.accept()
        defer { again.close() }
        guard case .hello = try again.receive(timeout: .seconds(5)) else {
            Issue.record("the backup did not reconnect")
            return
        }
    }

    @Test func aBackupSpeakingAnotherProtocolVersionIsToldSo() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { connection.close() }
        try connection.send(.hello(Hello(
            protocolVersion: 99, epoch: 0, lineage: nil, position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: 0)))
        guard case .refuse(let refusal) = try connection.receive(timeout: .seconds(5)) else {
            Issue.record("no refusal for protocol version 99")
            return
        }
        #expect(refusal.code == .unsupportedVersion)
        #expect(refusal.message.contains("99"))
    }

    @Test func aDirectoryOfAnotherLineageWithANewerEpochIsResyncedNotObeyed() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network)
        try primary.startPrimary()
        defer { primary.stop() }
        try await primary.database.put("theirs", v("1"))
        // A directory from another cluster that has been through failovers (epoch 3).
        let otherStore = FaultInjectingStore()
        do {
            let db = try Database.open(logStore: otherStore, snapshotStore: otherStore, options: .forTests)
            try await db.put("mine", v("2"))
            try db.writeReplicationMetadata(ReplicationStateCodec.encode(ReplicationState(
                lineage: .random(), epoch: 3, history: [EpochStart(epoch: 3, start: ReplicationPosition(generation: 0, offset: 0))],
                role: .backup)))
            db.close()
        }
        let backup = TestNode("b", network: network, store: otherStore)
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        // (Failed once in about 15 runs of the replication suites under load, without a log to
        // say why: the logs are in the message now.)
        #expect(try await eventually { primary.inSyncAsPrimary }, "primary: \(primary.logs.all)\nbackup: \(backup.logs.all)")
        try await primary.database.put("sync", v("point"))
        #expect(primary.node.writeRefusal == nil)  // not fenced by a stranger
        #expect(try backup.database.get("mine") == nil)
        #expect(try backup.database.get("theirs") == v("1"))
        #expect(backup.node.epoch == 0)
    }

    @Test func twoPromotionsToTheSameEpochNumberAreTwoHistories() async throws {
        let network = InMemoryReplicationNetwork()
        let a = TestNode("a", network: network)
        let b = TestNode("b", network: network)
        try a.startPrimary()
        try b.startBackup(of: "a")
        #expect(try await eventually { a.inSyncAsPrimary })
        try await a.database.put("shared", v("1"))
        a.stop()
        b.stop()
        // Both are promoted to epoch 1 on their own (an operator error), and each writes.
        let a1 = TestNode("a", network: network, store: a.store)
        try a1.startBackup(of: "nobody")
        #expect(a1.node.promote(reason: "test") == .promoted(epoch: 1))
        try await a1.database.put("a-only", v("x"))
        let b1 = TestNode("b", network: network, store: b.store)
        try b1.startBackup(of: "nobody")
        #expect(b1.node.promote(reason: "test") == .promoted(epoch: 1))
        try await b1.database.put("b-only", v("y"))
        for _ in 0..<5 { try await b1.database.put(Key("pad\(Int.random(in: 0..<1000))"), v("z")) }
        b1.stop()
        defer { a1.stop() }
        // b follows a: same lineage, same epoch number, different starts: resynced, not merged.
        let b2 = TestNode("b", network: network, store: b.store)
        try b2.startBackup(of: "a")
        defer { b2.stop() }
        #expect(try await eventually { a1.inSyncAsPrimary })
        try await a1.database.put("sync", v("point"))
        #expect(b2.node.status.resyncs == 1)
        #expect(try b2.database.get("b-only") == nil)
        #expect(try b2.database.get("a-only") == v("x"))
    }

    @Test func aBackupsDirectoryStartedAsAPrimaryTakesANewEpoch() async throws {
        let network = InMemoryReplicationNetwork()
        let a = TestNode("a", network: network)
        let b = TestNode("b", network: network)
        try a.startPrimary()
        try b.startBackup(of: "a")
        defer { a.stop() }
        #expect(try await eventually { a.inSyncAsPrimary })
        try await a.database.put("k", v("1"))
        b.stop()
        let b1 = TestNode("b", network: network, store: b.store)
        try b1.startPrimary()
        #expect(b1.node.epoch == 1)
        try await b1.database.put("b-only", v("2"))
        b1.stop()
        // Pointed back at a, it is the newer history: a steps down rather than merge it.
        let b2 = TestNode("b", network: network, store: b.store)
        try b2.startBackup(of: "a")
        defer { b2.stop() }
        #expect(try await eventually { a.node.writeRefusal == .fenced(newerEpoch: 1) })
        #expect(try b2.database.get("b-only") == v("2"))
    }

    /// A stopped node and its closed database are freed (the node held the database, whose
    /// committer holds the node as its sink: neither was ever released).
    @Test func aStoppedNodeAndItsClosedDatabaseAreFreed() async throws {
        final class WeakReferences: @unchecked Sendable {
            weak var primaryDatabase: Database?
            weak var primaryNode: ReplicationNode?
            weak var backupDatabase: Database?
            weak var backupNode: ReplicationNode?
            var allGone: Bool { primaryDatabase == nil && primaryNode == nil && backupDatabase == nil && backupNode == nil }
        }
        let references = WeakReferences()
        func runPairAndStop() async throws {
            let (primary, backup) = try await startPairInSync()
            try await primary.database.put("k", v("1"))
            references.primaryDatabase = primary.database
            references.primaryNode = primary.node
            references.backupDatabase = backup.database
            references.backupNode = backup.node
            backup.stop()
            primary.stop()
        }
        try await runPairAndStop()
        #expect(try await eventually { references.allGone },
                "alive after stop and close: primary database \(references.primaryDatabase != nil), node \(references.primaryNode != nil); backup database \(references.backupDatabase != nil), node \(references.backupNode != nil)")
    }

    /// The time limit stops a regression (stop waiting out the hour-long handshake) from hanging.
    @Test(.timeLimit(.minutes(10)))
    func stopDoesNotWaitForAPeerThatNeverSaysHello() async throws {
        let network = InMemoryReplicationNetwork()
        // A handshake timeout far beyond anything the test waits for, so that the accepted
        // connection stays accepted until stop: the condition polled below is a state that lasts,
        // not a window that closes when the handshake times out. (With 10 s, a parallel run that
        // kept this task from polling for longer than that failed the test; with 120 s, so did a
        // run under ThreadSanitizer, whose slowdown starved the cooperative pool for longer.)
        let handshakeTimeout = Duration.seconds(3600)
        let primary = TestNode("p", network: network) { $0.handshakeTimeout = handshakeTimeout }
        try primary.startPrimary()
        let silent = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { silent.close() }
        // Accepted, and its session waiting for a hello; stop closes the connection instead of
        // waiting out the handshake timeout.
        #expect(try await eventually(timeout: .seconds(600)) { primary.node.state.withLock { !$0.connections.isEmpty } })
        let started = ContinuousClock.now
        primary.stop()
        #expect(ContinuousClock.now - started < handshakeTimeout / 2)
        #expect(throws: TransportError.self) { _ = try silent.receive(timeout: .seconds(5)) }
    }
}

@Suite("Splitting a large batch into records frames")
struct FrameSplittingTests {
    @Test func framesHoldWholeRecordsWithinTheLimitAndCoverTheBatch() {
        var random = SeededRandom(seed: 7)
        for _ in 0..<200 {
            var records: [UInt8] = []
            var boundaries: Set<Int> = [0]
            for _ in 0..<Int.random(in: 1...12, using: &random) {
                let value = [UInt8](repeating: 1, count: Int.random(in: 0...300, using: &random))
                WALEncoder.append([.set(key: Array("k".utf8), value: value)], to: &records)
                boundaries.insert(records.count)
            }
            let limit = Int.random(in: 20...400, using: &random)
            records.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let end = PrimarySession.frameEnd(raw, from: offset, limit: limit)
                    #expect(end > offset)
                    #expect(boundaries.contains(end), "a frame must end at a record boundary")
                    // Over the limit only when one record alone is larger.
                    if end - offset > limit {
                        #expect(!boundaries.contains(where: { $0 > offset && $0 < end }))
                    }
                    offset = end
                }
                #expect(offset == raw.count)
            }
        }
    }
}
