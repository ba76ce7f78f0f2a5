import Dispatch
import Platform
import StorageEngine
import WireProtocol

/// The backup's side: connect to the primary, say where this log ends, receive a snapshot if the
/// primary sends one, then apply the stream and acknowledge each batch once it is durable.
///
/// One session, in order (`followOnce`):
/// 0. Connect. Until the welcome, accept frames of at most
///    `ReplicationProtocol.maxPayloadSizeBeforeWelcome`. With a token, authenticate both ways
///    first (`ReplicationAuthentication`).
/// 1. Send a hello with this log's end, the CRC of the segment up to it, the epoch and
///    the lineage.
/// 2. Receive the welcome (or a refusal). Refuse a primary whose epoch is older than ours.
/// 3. Snapshot mode: receive the checkpoint in chunks, check its length and CRC, install it.
/// 4. Adopt the primary's lineage, epoch and history, durably.
/// 5. Loop: records → write them at their position, fdatasync, apply, ack the new end; a
///    segment start → start the same segment (mirroring the primary's checkpoint); a heartbeat →
///    note the primary's log end. Nothing from the primary for the heartbeat timeout ends the
///    session.
/// After any failure it reconnects (100 ms, doubling to 1 s). A monitor thread promotes this
/// node when nothing has come from the primary for the heartbeat timeout, but only once this
/// backup has been welcomed by a primary at least once since it started: a backup that never
/// reached its primary may hold nothing, and must not take over.
final class BackupFollower: Sendable {
    let dialer: any ReplicationDialer
    private unowned let node: ReplicationNode
    private let database: Database

    struct View: Sendable {
        var connected = false
        var welcomed = false
        var lastContact: ContinuousClock.Instant?
        var primaryPosition: LogPosition?
        /// Applying what the primary sent (a snapshot install can take seconds): the primary is
        /// not silent, this backup is busy.
        var isApplying = false
        /// Sessions that have ended, for any reason (only grows).
        var sessionsEnded = 0
        /// When the silence watcher last looked (only grows; for tests that must see it look).
        var lastSilenceCheck: ContinuousClock.Instant?
    }
    private struct State {
        var view = View()
        var connection: (any ReplicationConnection)?
        var isStopping = false
        var threads: [JoinableThread] = []
    }
    private let state = Lock(State())
    private let stopSignal = DispatchSemaphore(value: 0)

    init(node: ReplicationNode, database: Database, dialer: any ReplicationDialer) {
        self.node = node
        self.database = database
        self.dialer = dialer
    }

    var view: View { state.withLock { $0.view } }
    private var log: @Sendable (LogLevel, String) -> Void { node.configuration.log }

    /// Starts the follower's threads; throws if one cannot be made (`stop` then joins any that
    /// started).
    func start() throws(ThreadStartError) {
        let starter = node.configuration.startThread
        try state.withLock { (state) throws(ThreadStartError) in
            state.threads.append(try JoinableThread(starter: starter) { [self] in follow() })
            if node.configuration.heartbeatTimeout > .zero {
                state.threads.append(try JoinableThread(starter: starter) { [self] in watchForSilence() })
            }
        }
    }

    /// Closes the connection and waits for the follower's threads. (Called by the node, also
    /// from the monitor thread's promotion: the monitor is not joined then, it returns by itself.)
    func stop() {
        let (connection, threads) = state.withLock { state in
            state.isStopping = true
            let parts = (state.connection, state.threads)
            state.threads = []
            return parts
        }
        connection?.close()
        stopSignal.signal()
        for thread in threads where !thread.isCurrent { thread.join() }
    }

    private var isStopping: Bool { state.withLock { $0.isStopping } }

    private func noteContact() {
        state.withLock { $0.view.lastContact = .now }
    }

    /// Runs an engine call on the primary's data; the time it takes does not count as silence.
    private func applying<T: Sendable>(
        _ call: (@escaping @Sendable (Result<T, DatabaseError>) -> Void) -> Void
    ) -> Result<T, DatabaseError> {
        state.withLock { $0.view.isApplying = true }
        let result = blockingCall(call)
        state.withLock { state in
            state.view.isApplying = false
            state.view.lastContact = .now
        }
        return result
    }

    // MARK: Following

    private func follow() {
        var delay: Duration = .milliseconds(100)
        var failuresInARow = 0
        while !isStopping {
            let outcome = followOnce()
            state.withLock { state in
                state.view.connected = false
                state.view.sessionsEnded += 1
                state.connection = nil
            }
            if isStopping { return }
            if case .failure(let reason) = outcome {
                failuresInARow += 1
                // The first failure of a streak, then every 10th: a primary that is down for a
                // while does not flood the log.
                if failuresInARow == 1 || failuresInARow % 10 == 0 {
                    log(.warning, "replication: following \(dialer.target): \(reason) (retrying)")
                }
            } else {
                failuresInARow = 0
                delay = .milliseconds(100)
            }
            _ = stopSignal.wait(timeout: .now() + delay.dispatchInterval)
            if isStopping {
                stopSignal.signal()
                return
            }
            delay = min(delay * 2, .seconds(1))
        }
    }

    /// One session. Returns why it ended.
    private func followOnce() -> Result<Void, ReplicationFailure> {
        // Step 1.
        let connection: any ReplicationConnection
        do throws(TransportError) {
            connection = try dialer.connect(timeout: .seconds(2))
        } catch {
            return .failure(ReplicationFailure("connect failed: \(error)"))
        }
        let registered = state.withLock { state -> Bool in
            guard !state.isStopping else { return false }
            state.connection = connection
            return true
        }
        defer { connection.close() }
        guard registered else { return .success(()) }
        connection.limitIncomingPayloads(to: ReplicationProtocol.maxPayloadSizeBeforeWelcome)
        if let token = node.configuration.token {
            do throws(ReplicationFailure) {
                try ReplicationAuthentication.authenticatePrimary(
                    over: connection, token: token, timeout: node.configuration.handshakeTimeout)
            } catch {
                return .failure(error)
            }
        }
        let mine = node.persistentState
        let position = database.logPosition
        let prefixCRC: UInt32
        do throws(DatabaseError) {
            prefixCRC = try database.logPrefixChecksum(generation: position.generation, length: position.offset) ?? 0
        } catch {
            return .failure(ReplicationFailure("reading this log failed: \(error)"))
        }
        do throws(TransportError) {
            try connection.send(.hello(Hello(
                protocolVersion: ReplicationProtocol.version, epoch: mine?.epoch ?? 0, lineage: mine?.lineage,
                position: ReplicationPosition(position), prefixCRC: prefixCRC,
                epochStart: mine.flatMap { mine in mine.history.last { $0.epoch == mine.epoch }?.start })))
            // Step 2.
            let welcome: Welcome
            switch try connection.receive(timeout: node.configuration.handshakeTimeout) {
            case .welcome(let received): welcome = received
            case .refuse(let refusal): return .failure(ReplicationFailure("the primary refused: \(refusal.message.sanitizedForLog)"))
            case let other: return .failure(ReplicationFailure("the primary sent \(other.kind) instead of a welcome"))
            }
            noteContact()
            connection.limitIncomingPayloads(to: ReplicationProtocol.maxPayloadSize)
            // Epochs compare only within a lineage: a primary of another lineage may only
            // replace this directory whole, with a snapshot.
            let sameLineage = mine.map { $0.lineage == welcome.lineage } ?? true
            if let mine, sameLineage, welcome.epoch < mine.epoch {
                try? connection.send(.refuse(Refusal(
                    code: .staleEpoch, message: "your epoch \(welcome.epoch) is older than this backup's \(mine.epoch)")))
                return .failure(ReplicationFailure("refused a stale primary: its epoch \(welcome.epoch) is older than ours (\(mine.epoch))"))
            }
            if !sameLineage && welcome.mode != .snapshot {
                try? connection.send(.refuse(Refusal(code: .protocolViolation, message: "another lineage must send a snapshot")))
                return .failure(ReplicationFailure("the primary (lineage \(welcome.lineage)) offered to stream into a directory of another lineage"))
            }
            guard welcome.epoch < UInt64.max else {
                return .failure(ReplicationFailure("the primary's epoch \(welcome.epoch) leaves no room for a promotion"))
            }
            // Step 3.
            if welcome.mode == .snapshot {
                if let failure = receiveSnapshot(connection) { return .failure(ReplicationFailure(failure)) }
                node.noteResync()
            }
            // Step 4.
            do throws(ReplicationStartError) {
                try node.adopt(
                    ReplicationState(lineage: welcome.lineage, epoch: welcome.epoch, history: welcome.history),
                    database: database)
            } catch {
                return .failure(ReplicationFailure("recording the primary's epoch failed: \(error)"))
            }
            state.withLock { state in
                state.view.connected = true
                state.view.welcomed = true
            }
            log(.info, "replication: following \(dialer.target) (epoch \(welcome.epoch)) from \(database.logPosition)"
                + (welcome.mode == .snapshot ? " after a snapshot" : ""))
            // Step 5.
            return applyStream(connection, epoch: welcome.epoch)
        } catch {
            return .failure(ReplicationFailure(error == .peerClosed ? "the primary closed the connection" : "\(error)"))
        }
    }

    /// Step 3. Returns nil once the snapshot is installed, else why not. Each chunk goes to
    /// checkpoint.G.tmp as it arrives (`ReplicaSnapshotReceiver`): the snapshot is never held in
    /// memory; its length and CRC are checked before anything of the old state changes.
    private func receiveSnapshot(_ connection: any ReplicationConnection) -> String? {
        var receiver: ReplicaSnapshotReceiver?
        defer { receiver?.abandon() }  // after an install: nothing left to delete
        do throws(TransportError) {
            while true {
                let frame = try connection.receive(timeout: silenceLimit)
                noteContact()
                switch frame {
                case .snapshotBegin(let begun, let total) where receiver == nil:
                    do throws(DatabaseError) {
                        receiver = try database.receiveSnapshot(generation: begun, totalBytes: total)
                    } catch {
                        return "starting to receive the snapshot failed: \(error)"
                    }
                case .snapshotChunk(let chunk) where receiver != nil:
                    do throws(DatabaseError) {
                        try receiver!.write(chunk)
                    } catch {
                        return "writing the snapshot failed: \(error)"
                    }
                case .snapshotEnd(let checksum) where receiver != nil:
                    let installing = receiver!
                    if case .failure(let error) = applying({ installing.install(crc32: checksum, completion: $0) }) {
                        return "installing the snapshot failed: \(error)"
                    }
                    log(.info, "replication: installed the primary's snapshot, checkpoint.\(installing.generation)")
                    return nil
                case .heartbeat:
                    continue
                default:
                    return "the primary sent \(frame.kind) in the middle of a snapshot"
                }
            }
        } catch {
            return "receiving the snapshot failed: \(error)"
        }
    }

    /// Step 5. Returns why the stream ended.
    private func applyStream(_ connection: any ReplicationConnection, epoch: UInt64) -> Result<Void, ReplicationFailure> {
        while true {
            let frame: ReplicationFrame
            do throws(TransportError) {
                frame = try connection.receive(timeout: silenceLimit)
            } catch {
                if isStopping { return .success(()) }
                switch error {
                case .timedOut: return .failure(ReplicationFailure("nothing from the primary for \(silenceLimit.logDescription)"))
                case .peerClosed: return .failure(ReplicationFailure("the primary closed the connection"))
                default: return .failure(ReplicationFailure("receiving from the primary failed: \(error)"))
                }
            }
            noteContact()
            switch frame {
            case .records(let at, let records):
                guard let start = LogPosition(at) else { return .failure(ReplicationFailure("records at an impossible position")) }
                if case .failure(let error) = applying({ database.applyReplicated(records, at: start, completion: $0) }) {
                    return .failure(ReplicationFailure("applying records at \(start) failed: \(error)"))
                }
                let end = LogPosition(generation: start.generation, offset: start.offset + records.count)
                do throws(TransportError) {
                    try connection.send(.ack(ReplicationPosition(end)))
                } catch {
                    return .failure(ReplicationFailure("sending an ack failed: \(error)"))
                }
            case .startSegment(let generation):
                if case .failure(let error) = applying({ database.mirrorSegmentStart(generation, rotated: $0) }) {
                    return .failure(ReplicationFailure("starting logfile.\(generation) as the primary did failed: \(error)"))
                }
            case .heartbeat(let heartbeatEpoch, let position):
                guard heartbeatEpoch >= epoch else {
                    return .failure(ReplicationFailure("the primary's heartbeat carries an older epoch (\(heartbeatEpoch) < \(epoch))"))
                }
                state.withLock { $0.view.primaryPosition = LogPosition(position) }
            case .refuse(let refusal):
                return .failure(ReplicationFailure("the primary ended the stream: \(refusal.message.sanitizedForLog)"))
            default:
                try? connection.send(.refuse(Refusal(code: .protocolViolation, message: "unexpected \(frame.kind)")))
                return .failure(ReplicationFailure("the primary sent \(frame.kind) in the stream"))
            }
        }
    }

    /// How long to wait for the next frame before dropping the connection and reconnecting: the
    /// heartbeat timeout, or 30 s when self-promotion is off (a primary that vanished without
    /// closing the connection, its machine dead or cut off, must not leave this backup waiting
    /// on a dead socket for ever).
    private var silenceLimit: Duration {
        let timeout = node.configuration.heartbeatTimeout
        return timeout > .zero ? timeout : BackupFollower.silenceLimitWithoutPromotion
    }

    static let silenceLimitWithoutPromotion: Duration = .seconds(30)

    // MARK: Promotion on silence

    private func watchForSilence() {
        let timeout = node.configuration.heartbeatTimeout
        let started = ContinuousClock.now
        while true {
            _ = stopSignal.wait(timeout: .now() + .milliseconds(50))
            if isStopping {
                stopSignal.signal()
                return
            }
            let view = self.view
            let now = ContinuousClock.now
            let silence = now - (view.lastContact ?? started)
            if view.welcomed, !view.isApplying, silence > timeout {
                node.promote(reason: "nothing from the primary \(dialer.target) for \(silence.logDescription), over -repl-heartbeat-timeout \(timeout.logDescription)")
                return
            }
            // A look that decided not to promote (recorded after the decision, so a test that
            // sees it knows the decision was made).
            state.withLock { $0.view.lastSilenceCheck = now }
        }
    }
}
