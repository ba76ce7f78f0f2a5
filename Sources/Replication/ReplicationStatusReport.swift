/// A node's replication figures at one moment (GET /v1/replication and /metrics).
public struct ReplicationStatusReport: Sendable, Equatable {
    public var role: ReplicationRole
    public var epoch: UInt64
    public var syncMode: ReplicationSyncMode
    /// Primary: the attached backup's address. Backup: the primary it follows.
    public var peer: String?
    /// Primary: a backup is attached. Backup: a session with the primary is open.
    public var connected: Bool
    /// Primary: the attached backup acknowledges every batch before it is acknowledged here.
    /// Backup: streaming live, nothing known to be missing.
    public var inSync: Bool
    /// Primary: bytes sent to the backup and not yet acknowledged (plus, while it catches up, the
    /// log it has yet to receive). Backup: how far its log is behind the primary's last heartbeat.
    public var lagBytes: Int
    /// This node's durable log end.
    public var logGeneration: UInt64
    public var logOffset: Int
    /// Backup: since the last frame from the primary. Primary: since the backup's last ack.
    public var lastContactSecondsAgo: Double?
    /// A newer primary's epoch, if this primary has met one and stepped down.
    public var fencedBy: UInt64?
    public var detaches: Int
    public var resyncs: Int
    public var promotions: Int
}

/// Which side of replication a node is on.
public enum ReplicationRole: String, Sendable {
    case primary
    case backup
}

/// Why a node refuses client writes right now.
public enum ReplicationWriteRefusal: Sendable, Equatable {
    /// It is a backup: its state comes from its primary only.
    case backup
    /// It is a primary with `.required` sync and no backup in sync.
    case noBackupInSync
    /// It was a primary and met a newer one (that epoch): read-only until restarted as a backup.
    case fenced(newerEpoch: UInt64)
}

/// What a promotion request did.
public enum ReplicationPromotion: Sendable, Equatable {
    case promoted(epoch: UInt64)
    case alreadyPrimary(epoch: UInt64)
    case refused(String)
}
