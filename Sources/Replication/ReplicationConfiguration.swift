public import StorageEngine

/// How a replication node behaves. The defaults are small_db_server's.
public struct ReplicationConfiguration: Sendable {
    /// Primary: how often it sends a heartbeat to its backup. Zero disables heartbeats.
    public var heartbeatInterval: Duration = .seconds(1)
    /// Backup: promote itself after hearing nothing from its primary for this long. Zero disables
    /// self-promotion (an operator promotes with POST /v1/promote).
    public var heartbeatTimeout: Duration = .seconds(5)
    /// Primary: detach a backup that has not acknowledged a batch for this long, and go on alone
    /// (or, with `.required`, refuse writes). Zero: wait for the backup forever.
    public var ackTimeout: Duration = .seconds(2)
    /// What a primary does while no backup is in sync.
    public var syncMode: ReplicationSyncMode = .available
    /// Whether the database runs background checkpoints once this node is a primary (a backup's
    /// are off: its checkpoints mirror the primary's).
    public var backgroundCheckpointsAsPrimary = true
    /// Primary: opens the listener backups connect to (made when the node starts as, or becomes,
    /// a primary). Nil: no listener, so no backup can attach.
    public var makeListener: (@Sendable () throws(TransportError) -> any ReplicationListener)?
    /// How long either side waits for the other's handshake frame (the primary for a hello, the
    /// backup for a welcome) before it drops the connection.
    public var handshakeTimeout: Duration = .seconds(10)
    /// How large the pieces of a snapshot and of a catch-up read are.
    public var streamChunkSize = 1 << 20
    /// Receives one line per notable event (attach, detach, resync, promotion, refusals).
    public var log: @Sendable (LogLevel, String) -> Void = { _, _ in }

    public init() {}
}

/// What a primary does while no backup is in sync.
public enum ReplicationSyncMode: String, Sendable, CaseIterable {
    /// Detach a backup that stops acknowledging and go on alone; it catches up when it returns.
    /// Writes stay available; a failover while detached loses what the backup never received.
    case available
    /// Refuse writes (503) while no backup is in sync: nothing is acknowledged that only one
    /// node holds, at the price of availability.
    case required
}
