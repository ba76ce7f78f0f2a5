/// The replication figures of one server at one moment, as the replication layer reports them
/// (`ReplicationNode.status`) and GET /v1/replication and /metrics show them.
public struct ReplicationStatus: Sendable, Equatable {
    public var role: ReplicationRole
    /// The fencing epoch: incremented (durably) by each promotion.
    public var epoch: UInt64
    /// `.available` (a stalled backup is detached and the primary goes on alone) or `.required`
    /// (writes are refused while no backup is in sync).
    public var syncMode: ReplicationSyncMode
    /// Primary: the attached backup's address; backup: the primary it follows. Nil when none.
    public var peer: String?
    /// Primary: a backup is attached. Backup: a session with the primary is open.
    public var connected: Bool
    /// Primary: a backup is attached and acknowledges every batch before it is acknowledged
    /// here. Backup: streaming live, caught up with the primary (nothing known to be missing).
    public var inSync: Bool
    /// Primary: bytes sent to the backup and not yet acknowledged (plus, while it catches up, the
    /// log it has yet to receive). Backup: how far its log is behind the primary's last
    /// announced log position.
    public var lagBytes: Int
    /// This node's durable log end: generation and offset in that generation's logfile.
    public var logGeneration: UInt64
    public var logOffset: Int
    /// Backup: seconds since the last frame from the primary; primary: since the backup's last
    /// acknowledgement. Nil when there has been none.
    public var lastContactSecondsAgo: Double?
    /// A newer primary's epoch, if this primary has met one and stepped down (the HTTP front
    /// reports it through `WriteRefusal.fenced`, not as a figure).
    public var fencedBy: UInt64?
    /// Primary: backups detached because they did not acknowledge within -repl-ack-timeout.
    public var detaches: Int
    /// Snapshots sent (primary) or installed (backup).
    public var resyncs: Int
    /// Promotions of this node since it started.
    public var promotions: Int

    public init(
        role: ReplicationRole = .primary, epoch: UInt64 = 0, syncMode: ReplicationSyncMode = .available,
        peer: String? = nil, connected: Bool = false, inSync: Bool = false, lagBytes: Int = 0,
        logGeneration: UInt64 = 0, logOffset: Int = 0, lastContactSecondsAgo: Double? = nil,
        fencedBy: UInt64? = nil, detaches: Int = 0, resyncs: Int = 0, promotions: Int = 0
    ) {
        self.role = role
        self.epoch = epoch
        self.syncMode = syncMode
        self.peer = peer
        self.connected = connected
        self.inSync = inSync
        self.lagBytes = lagBytes
        self.logGeneration = logGeneration
        self.logOffset = logOffset
        self.lastContactSecondsAgo = lastContactSecondsAgo
        self.fencedBy = fencedBy
        self.detaches = detaches
        self.resyncs = resyncs
        self.promotions = promotions
    }
}
