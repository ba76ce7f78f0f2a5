import Dispatch
public import Platform
public import StorageEngine
public import WireProtocol

/// One server's side of primary/backup replication: the engine's `ReplicationSink` (the output
/// rule), the role (primary or backup), the epoch, and the threads that stream the log.
///
/// Lifecycle:
/// 1. `let node = ReplicationNode(configuration:)`
/// 2. `let db = Database.open(…, replicationSink: node)` (a backup's with background checkpoints off)
/// 3. `node.startAsPrimary(database: db)` or `node.startAsBackup(database: db, dialer:)`
/// 4. … `promote(reason:)` at any time turns a backup into a primary …
/// 5. `node.stop()`, then `db.close()`.
///
/// Epochs and fencing (what must stay true):
/// - Each directory keeps, in its `replication` file, a lineage (which family of directories it
///   belongs to), the highest epoch it has seen, where each epoch began, and the role it was last
///   used in. The file is written durably before anything it describes happens: a promotion
///   records epoch E+1, starting at the promoted backup's log end, before the first write of the
///   new primary; a backup adopts its primary's epoch before it applies a record of that epoch (a
///   snapshot is installed first: a crash in between costs only another resync). A backup's
///   directory started as a primary is a promotion too.
/// - Epochs compare only within a lineage. A directory of another lineage is replaced whole by a
///   snapshot, whatever its epoch.
/// - A primary steps down (read-only) only for a peer of its own lineage whose epoch is newer and
///   whose history fits its own: the peer's epoch began at or after the start of this primary's
///   epoch and not past this primary's log end (a promoted backup can only have begun its epoch
///   within what it was sent), and its log reaches that start. Someone promoted past it. A hello
///   without a lineage, of another lineage, or with a history that does not fit never fences: it
///   is refused (or resynced, for another lineage) and changes nothing here. A backup refuses a
///   primary of its lineage whose epoch is older than its own.
/// - A backup streams from where its log ends only if all of these hold: same lineage (or none
///   yet); its epoch began where this primary's history says it did; its position is not past
///   the start of any later epoch here; it is not at the start of a segment without a lineage
///   (nothing could be compared); the segment is still here (and, if retired, its end known);
///   and the CRC of the segment up to its position is equal. Otherwise it gets a snapshot: a
///   diverged log is replaced, never merged.
public final class ReplicationNode: ReplicationSink, Sendable {
    let configuration: ReplicationConfiguration

    struct State {
        var role: ReplicationRole = .backup
        var isStarted = false
        var isStopping = false
        var database: Database?
        /// The durable `replication` file's content; nil for a backup that has never followed anyone.
        var persistent: ReplicationState?
        var fencedBy: UInt64?
        /// The end of the last batch the committer handed over (or where a segment starts).
        var lastEnd = LogPosition(generation: 0, offset: 0)
        /// Primary: the attached backup, and whether it is in sync (then every batch waits for it).
        var session: PrimarySession?
        var sessionInSync = false
        /// The batch `willSync` already sent (its start), and to which session.
        var shippedBatch: (start: LogPosition, session: ObjectIdentifier)?
        /// Where each segment retired while this node was primary ended: catch-up must send a
        /// retired segment exactly to its end (a checkpoint may be shrinking the file meanwhile,
        /// and a short read must not pass for the end). A segment retired before this node
        /// became primary has no entry: a backup that needs it gets a snapshot.
        var retiredSegmentEnds: [UInt64: Int] = [:]
        var listener: (any ReplicationListener)?
        var follower: BackupFollower?
        var threads: [JoinableThread] = []
        /// Connections accepted and not yet ended (`stop` closes them: a peer that never says
        /// hello must not hold up shutdown).
        var connections: [ObjectIdentifier: any ReplicationConnection] = [:]
        /// Of `connections`, those not yet past their handshake (at most
        /// `configuration.maxHandshakingConnections`).
        var handshaking = 0
        /// Connections closed at accept because too many were in their handshake, or because no
        /// thread could be made for them (only grows).
        var connectionsRefusedAtAccept = 0
        /// Hellos that claimed a newer epoch and were not believed (only grows).
        var fencingClaimsRefused = 0
        var detaches = 0
        var resyncs = 0
        var promotions = 0
    }
    let state = Lock(State())
    /// Wakes the heartbeat thread early (on stop).
    let stopSignal = DispatchSemaphore(value: 0)
    /// Held for a whole promotion, and by `stop` while it marks the node stopping: a promotion
    /// either finishes before `stop` begins, or sees the node stopping and does nothing.
    private let promotionGate = DispatchSemaphore(value: 1)
    /// One snapshot at a time, spaced by `configuration.minimumSnapshotInterval`.
    let snapshotGate: SnapshotGate

    public init(configuration: ReplicationConfiguration = ReplicationConfiguration()) {
        self.configuration = configuration
        snapshotGate = SnapshotGate(minimumInterval: configuration.minimumSnapshotInterval)
    }

    var log: @Sendable (LogLevel, String) -> Void { configuration.log }

    // MARK: Starting and stopping

    /// Runs as a primary over `database`: records a lineage if the directory has none, opens the
    /// listener (if configured) and sends heartbeats.
    public func startAsPrimary(database: Database) throws(ReplicationStartError) {
        let persistent = try stateForPrimary(database)
        state.withLock { state in
            state.database = database
            state.persistent = persistent
            state.role = .primary
            state.isStarted = true
            state.lastEnd = database.logPosition
        }
        database.setBackgroundCheckpoints(enabled: configuration.backgroundCheckpointsAsPrimary)
        try startPrimaryServices()
        log(.info, "replication: primary, epoch \(persistent.epoch), lineage \(persistent.lineage)")
    }

    /// The replication file of a directory about to serve as a primary, written if it changes: a
    /// new lineage for a directory without one, a new epoch for one last used by a backup (an
    /// operator's promotion: its writes must not pass for the epoch it followed).
    private func stateForPrimary(_ database: Database) throws(ReplicationStartError) -> ReplicationState {
        guard let existing = try loadState(database) else {
            let fresh = ReplicationState(lineage: .random(), epoch: 0, history: [], role: .primary)
            try saveState(fresh, database)
            return fresh
        }
        guard existing.role == .backup else { return existing }
        let promoted = try nextEpoch(after: existing, startingAt: database.logPosition)
        try saveState(promoted, database)
        log(.warning, "replication: this directory was last a backup (epoch \(existing.epoch)); as a primary it starts epoch \(promoted.epoch)")
        return promoted
    }

    /// Runs as a backup of the primary `dialer` reaches: read-only, following its log.
    public func startAsBackup(database: Database, dialer: any ReplicationDialer) throws(ReplicationStartError) {
        let persistent = try loadState(database)
        database.setBackgroundCheckpoints(enabled: false)
        let follower = BackupFollower(node: self, database: database, dialer: dialer)
        state.withLock { state in
            state.database = database
            state.persistent = persistent
            state.role = .backup
            state.isStarted = true
            state.lastEnd = database.logPosition
            state.follower = follower
        }
        do throws(ThreadStartError) {
            try follower.start()
        } catch {
            follower.stop()
            state.withLock { $0.follower = nil }
            throw .thread(error)
        }
        log(.info, "replication: backup of \(dialer.target), epoch \(persistent?.epoch ?? 0)")
    }

    /// Stops every replication thread and closes every connection. Writes still in the committer
    /// are acknowledged without a backup from here on (or refused with `.required`).
    public func stop() {
        promotionGate.wait()
        let (listener, session, follower, threads, connections) = state.withLock { state in
            state.isStopping = true
            let parts = (state.listener, state.session, state.follower, state.threads, Array(state.connections.values))
            state.listener = nil
            state.session = nil
            state.sessionInSync = false
            state.follower = nil
            state.threads = []
            // The database holds this node as its replication sink: holding it back would keep
            // both alive for good once the owner lets go of them. (Status goes on reporting
            // where the log ended.)
            if let database = state.database { state.lastEnd = database.logPosition }
            state.database = nil
            return parts
        }
        promotionGate.signal()  // before joining: a silence watcher may be waiting to promote
        listener?.close()
        for connection in connections { connection.close() }
        session?.fail("this server is stopping")
        follower?.stop()
        stopSignal.signal()
        for thread in threads { thread.join() }
    }

    // MARK: The output rule (ReplicationSink)

    public func willSync(_ records: UnsafeRawBufferPointer, at start: LogPosition) {
        let session = state.withLock { state -> PrimarySession? in
            guard state.role == .primary, state.sessionInSync, let session = state.session else { return nil }
            state.shippedBatch = (start, ObjectIdentifier(session))
            return session
        }
        guard let session else { return }
        do throws(TransportError) {
            try session.sendRecords(records, at: start, timeout: liveSendTimeout)
        } catch {
            session.fail("sending to the backup failed: \(error)")  // `replicate` detaches it
        }
    }

    public func replicate(_ records: UnsafeRawBufferPointer, at start: LogPosition) -> ReplicationVerdict {
        let end = LogPosition(generation: start.generation, offset: start.offset + records.count)
        let (role, session, shipped) = state.withLock { state in
            state.lastEnd = end
            let session = state.sessionInSync ? state.session : nil
            // Sent by `willSync` to this very session (not to one it has since replaced)?
            let shipped = session.map { state.shippedBatch?.start == start && state.shippedBatch?.session == ObjectIdentifier($0) } ?? false
            state.shippedBatch = nil
            return (state.role, session, shipped)
        }
        guard role == .primary else { return .acknowledge }  // a backup applying its primary's records
        if let session {
            // Sent by `willSync` already, unless the backup came into sync since then.
            let failure = shipped
                ? session.waitForAcknowledgement(of: end, timeout: configuration.ackTimeout)
                : session.replicateLive(records, at: start, timeout: configuration.ackTimeout)
            guard let failure else { return .acknowledge }
            detach(session, because: failure)
        }
        return verdictWithoutBackup()
    }

    public func didStartSegment(_ generation: UInt64) {
        let session = state.withLock { state in
            if state.lastEnd.generation + 1 == generation {
                state.retiredSegmentEnds[state.lastEnd.generation] = state.lastEnd.offset
            }
            // Keep a bounded record: segments this far back are long deleted.
            state.retiredSegmentEnds = state.retiredSegmentEnds.filter { $0.key + 64 > generation }
            state.lastEnd = LogPosition(generation: generation, offset: 0)
            return state.role == .primary && state.sessionInSync ? state.session : nil
        }
        guard let session else { return }
        do throws(TransportError) {
            try session.sendSegmentStart(generation, timeout: liveSendTimeout)
        } catch {
            detach(session, because: "sending the start of logfile.\(generation) failed: \(error)")
        }
    }

    /// How long a send on the committer's path may take: the ack timeout (a backup that takes
    /// no bytes is as stalled as one that does not acknowledge); nil: the connection's own.
    var liveSendTimeout: Duration? {
        configuration.ackTimeout > .zero ? configuration.ackTimeout : nil
    }

    private func verdictWithoutBackup() -> ReplicationVerdict {
        configuration.syncMode == .required ? .refuse(reason: "no backup is in sync (-repl-sync=required)") : .acknowledge
    }

    /// Drops `session` if it is still the attached one, and says why.
    func detach(_ session: PrimarySession, because reason: String) {
        let wasAttached = state.withLock { state in
            guard state.session === session else { return false }
            state.session = nil
            state.sessionInSync = false
            state.detaches += 1
            return true
        }
        session.fail(reason)
        if wasAttached {
            let alone = configuration.syncMode == .required ? "refusing writes until a backup is in sync" : "going on alone"
            log(.warning, "replication: detached backup \(session.peer): \(reason); \(alone)")
        }
    }

    // MARK: Role, promotion, fencing

    /// Why client writes are refused right now, or nil.
    public var writeRefusal: WriteRefusal? {
        state.withLock { state in
            if state.role == .backup { return .backup }
            if let newer = state.fencedBy { return .fenced(newerEpoch: newer) }
            if configuration.syncMode == .required && !(state.session != nil && state.sessionInSync) {
                return .noBackupInSync
            }
            return nil
        }
    }

    public var role: ReplicationRole { state.withLock { $0.role } }
    public var epoch: UInt64 { state.withLock { $0.persistent?.epoch ?? 0 } }

    /// Makes this backup a primary now: stops following, records epoch+1 durably (starting at
    /// its log end), turns on background checkpoints, opens the listener and sends heartbeats.
    @discardableResult
    public func promote(reason: String) -> PromotionOutcome {
        promotionGate.wait()
        defer { promotionGate.signal() }
        enum Claim {
            case promote(BackupFollower?, Database)
            case answer(PromotionOutcome)
        }
        let claim: Claim = state.withLock { state in
            guard let database = state.database, state.isStarted, !state.isStopping else {
                return .answer(.refused("replication is not running"))
            }
            guard state.role == .backup else { return .answer(.alreadyPrimary(epoch: state.persistent?.epoch ?? 0)) }
            let follower = state.follower
            state.follower = nil
            return .promote(follower, database)
        }
        let follower: BackupFollower?
        let database: Database
        switch claim {
        case .answer(let outcome): return outcome
        case .promote(let claimedFollower, let claimedDatabase): (follower, database) = (claimedFollower, claimedDatabase)
        }
        follower?.stop()
        let previous = state.withLock { $0.persistent }
        let start = database.logPosition
        let promoted: ReplicationState
        do throws(ReplicationStartError) {
            promoted = try nextEpoch(
                after: previous ?? ReplicationState(lineage: .random(), epoch: 0, history: [], role: .backup), startingAt: start)
            try saveState(promoted, database)
        } catch {
            log(.error, "replication: promotion failed, staying a backup: \(error)")
            if let follower {
                let restarted = BackupFollower(node: self, database: database, dialer: follower.dialer)
                state.withLock { $0.follower = restarted }
                do throws(ThreadStartError) {
                    try restarted.start()
                } catch {
                    log(.error, "replication: cannot follow \(follower.dialer.target) again: \(error)")
                }
            }
            return .refused("could not record the new epoch: \(error)")
        }
        state.withLock { state in
            state.persistent = promoted
            state.role = .primary
            state.lastEnd = database.logPosition
            state.promotions += 1
        }
        database.setBackgroundCheckpoints(enabled: configuration.backgroundCheckpointsAsPrimary)
        log(.warning, "replication: promoted to primary, epoch \(promoted.epoch), at \(start) (\(reason))")
        do throws(ReplicationStartError) {
            try startPrimaryServices()
        } catch {
            log(.error, "replication: promoted, but backups cannot attach: \(error)")
        }
        return .promoted(epoch: promoted.epoch)
    }

    /// The state after a promotion at `start`: the next epoch, beginning there.
    func nextEpoch(after previous: ReplicationState, startingAt start: LogPosition) throws(ReplicationStartError) -> ReplicationState {
        guard previous.epoch < UInt64.max else { throw .epochExhausted }
        let epoch = previous.epoch + 1
        return ReplicationState(
            lineage: previous.lineage, epoch: epoch,
            history: previous.history + [EpochStart(epoch: epoch, start: ReplicationPosition(start))], role: .primary)
    }

    /// A primary that met a newer epoch steps down: read-only from now on.
    func fence(newerEpoch: UInt64, peer: String) {
        let first = state.withLock { state -> Bool in
            guard state.role == .primary, (state.fencedBy ?? 0) < newerEpoch else { return false }
            state.fencedBy = newerEpoch
            return true
        }
        if first {
            log(.error, "replication: \(peer) has epoch \(newerEpoch), newer than this primary's: "
                + "this server was superseded and refuses writes from now on (restart it as a backup of the new primary)")
        }
    }

    // MARK: Status

    public var status: ReplicationStatus {
        let state = self.state.withLock { $0 }
        let position = state.database?.logPosition ?? state.lastEnd
        var report = ReplicationStatus(
            role: state.role, epoch: state.persistent?.epoch ?? 0, syncMode: configuration.syncMode, peer: nil,
            connected: false, inSync: false, lagBytes: 0, logGeneration: position.generation, logOffset: position.offset,
            lastContactSecondsAgo: nil, fencedBy: state.fencedBy, detaches: state.detaches, resyncs: state.resyncs,
            promotions: state.promotions)
        if state.role == .primary, let session = state.session, session.failure == nil {
            report.peer = session.peer
            report.connected = true
            report.inSync = state.sessionInSync
            report.lagBytes = distance(from: session.acknowledged, to: state.lastEnd)
            report.lastContactSecondsAgo = seconds(since: session.lastAck)
        } else if state.role == .backup, let follower = state.follower {
            let view = follower.view
            report.peer = follower.dialer.target
            report.connected = view.connected
            if let primary = view.primaryPosition { report.lagBytes = distance(from: position, to: primary) }
            report.inSync = view.connected && report.lagBytes == 0
            report.lastContactSecondsAgo = view.lastContact.map { seconds(since: $0) }
        }
        return report
    }

    func noteResync() {
        state.withLock { $0.resyncs += 1 }
    }

    // MARK: The replication file

    func loadState(_ database: Database) throws(ReplicationStartError) -> ReplicationState? {
        let bytes: [UInt8]?
        do throws(DatabaseError) {
            bytes = try database.readReplicationMetadata()
        } catch {
            throw .storage(error)
        }
        guard let bytes else { return nil }
        do throws(ReplicationStateError) {
            return try ReplicationStateCodec.decode(bytes)
        } catch {
            throw .damagedStateFile(error)
        }
    }

    func saveState(_ replicationState: ReplicationState, _ database: Database) throws(ReplicationStartError) {
        do throws(DatabaseError) {
            try database.writeReplicationMetadata(ReplicationStateCodec.encode(replicationState))
        } catch {
            throw .storage(error)
        }
    }

    /// A backup takes on its primary's lineage, epoch and history (durably, before applying
    /// anything of that epoch).
    func adopt(_ primary: ReplicationState, database: Database) throws(ReplicationStartError) {
        var followed = primary
        followed.role = .backup
        let current = state.withLock { $0.persistent }
        guard current != followed else { return }
        try saveState(followed, database)
        state.withLock { $0.persistent = followed }
    }

    /// The backup's durable replication state (nil before it ever followed a primary).
    var persistentState: ReplicationState? { state.withLock { $0.persistent } }
}

/// Why a node could not start (or promote).
public enum ReplicationStartError: Error, Sendable, CustomStringConvertible {
    case storage(DatabaseError)
    case damagedStateFile(ReplicationStateError)
    case listener(TransportError)
    case epochExhausted
    case thread(ThreadStartError)

    public var description: String {
        switch self {
        case .epochExhausted: "the epoch cannot grow any further"
        case .storage(let error): "\(error)"
        case .damagedStateFile(let error): "the replication file is damaged: \(error)"
        case .listener(let error): "cannot listen for backups: \(error)"
        case .thread(let error): "cannot start a replication thread: \(error)"
        }
    }
}

/// Bytes from `a` to `b` in the log; across a segment boundary, `b`'s offset (the bytes of the
/// older segment are not counted: an estimate, as a lag figure may be).
func distance(from a: LogPosition, to b: LogPosition) -> Int {
    guard a < b else { return 0 }
    return a.generation == b.generation ? b.offset - a.offset : b.offset
}

func seconds(since instant: ContinuousClock.Instant) -> Double {
    return (ContinuousClock.now - instant).secondsValue
}
