import Platform
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
    /// How long either side waits for the other's handshake (the primary for the authentication
    /// frames and the hello, all together; the backup for each answer up to the welcome) before it
    /// drops the connection.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Primary: connections accepted and not yet past their handshake (authenticated, if a token
    /// is set, and said hello), at most; one more is closed as soon as it is accepted. Each such
    /// connection holds one thread and at most one handshake-sized frame
    /// (`ReplicationProtocol.maxPayloadSizeToPrimary`).
    public var maxHandshakingConnections = 8
    /// Primary: the shortest time between the starts of two snapshots (each one writes a
    /// checkpoint), and only one at a time. A backup that needs a snapshot sooner is refused
    /// (`busy`, with when to retry) and retries by itself. Zero: no spacing (still one at a time).
    public var minimumSnapshotInterval: Duration = .seconds(10)
    /// The shared secret both sides prove they know before anything else (`-repl-token-file`);
    /// nil: no authentication, anyone who reaches the port can follow or fence this node.
    public var token: ReplicationToken?
    /// How large the pieces of a snapshot and of a catch-up read are.
    public var streamChunkSize = 1 << 20
    /// Receives one line per notable event (attach, detach, resync, promotion, refusals).
    public var log: @Sendable (LogLevel, String) -> Void = { _, _ in }
    /// How the node makes its threads (tests replace it to simulate a process out of threads).
    var startThread: ThreadStarter = tryStartDetachedThread

    public init() {}
}
