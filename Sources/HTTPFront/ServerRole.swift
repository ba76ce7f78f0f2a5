/// What the HTTP front needs from replication: whether this server is a primary or a backup,
/// whether it takes writes now, its replication figures, and promotion. The replication layer
/// implements it (through an adapter in small_db_server: this module does not import
/// Replication); a server without replication is a `StandalonePrimary`.
///
/// Every property is read on an event loop's thread, once per request that needs it, so the role
/// can change at any time (a backup promoted, a primary fenced) and the next request sees it.
/// Reads must be cheap and must not block: a lock held briefly, an atomic.
public protocol ServerRole: Sendable {
    /// "primary" or "backup", as GET /v1/role reports it.
    var roleName: String { get }
    /// Why writes (PUT, DELETE, POST /v1/checkpoint) are refused right now, or nil when they are
    /// accepted.
    var writeRefusal: WriteRefusal? { get }
    /// The replication figures for GET /v1/replication and /metrics; nil for a server without
    /// replication.
    var replicationStatus: ReplicationStatus? { get }
    /// POST /v1/promote: make this backup a primary now, and say what happened. Called on a
    /// thread of its own (not an event loop): it may block until the promotion is done.
    func promote() -> PromotionOutcome
}

/// Why a server refuses writes. Each case has its HTTP status and message (`httpStatus`,
/// `description`), which PUT, DELETE and POST /v1/checkpoint answer.
public enum WriteRefusal: Sendable, Equatable, CustomStringConvertible {
    /// A backup: 403 `writes are disabled on backup` (the Go server's message).
    case backup
    /// A primary with -repl-sync=required and no backup in sync: 503.
    case noBackupInSync
    /// A primary that met a peer with a newer epoch and stepped down to read-only: 403.
    case fenced(newerEpoch: UInt64)

    public var httpStatus: Int {
        switch self {
        case .backup, .fenced: 403
        case .noBackupInSync: 503
        }
    }

    public var description: String {
        switch self {
        case .backup: "writes are disabled on backup"
        case .noBackupInSync: "no backup is in sync and -repl-sync=required: write refused"
        case .fenced(let epoch): "this primary was superseded by a newer one (epoch \(epoch)): read-only"
        }
    }
}

/// What POST /v1/promote did.
public enum PromotionOutcome: Sendable, Equatable {
    /// This backup is now a primary of `epoch`: 200 `{"role":"primary","epoch":N}`.
    case promoted(epoch: UInt64)
    /// It already was a primary: 200, the same body.
    case alreadyPrimary(epoch: UInt64)
    /// It cannot be promoted (say why): 409 `{"error":"…"}`.
    case refused(String)
}

/// The replication figures of one server, as GET /v1/replication and /metrics report them.
public struct ReplicationStatus: Sendable, Equatable {
    /// "primary" or "backup".
    public var role: String
    /// The fencing epoch: incremented (durably) by each promotion.
    public var epoch: UInt64
    /// "available" (a stalled backup is detached and the primary goes on alone) or "required"
    /// (writes are refused while no backup is in sync).
    public var syncMode: String
    /// Primary: the attached backup's address; backup: the primary it follows. Nil when none.
    public var peer: String?
    /// Whether a replication connection to the peer is up.
    public var connected: Bool
    /// Primary: a backup is attached and acknowledging every batch. Backup: streaming live,
    /// caught up with the primary.
    public var inSync: Bool
    /// Primary: bytes sent or committed that the backup has not acknowledged yet. Backup: bytes
    /// behind the primary's last announced log position.
    public var lagBytes: Int
    /// This node's durable log end: generation and offset in that generation's logfile.
    public var logGeneration: UInt64
    public var logOffset: Int
    /// Backup: seconds since the last frame from the primary; primary: since the last
    /// acknowledgement. Nil when there has been none.
    public var lastContactSecondsAgo: Double?
    /// Primary: backups detached because they did not acknowledge within -repl-ack-timeout.
    public var detaches: Int
    /// Snapshots sent (primary) or installed (backup).
    public var resyncs: Int
    /// Promotions of this node since it started.
    public var promotions: Int

    public init(
        role: String = "primary", epoch: UInt64 = 0, syncMode: String = "available", peer: String? = nil,
        connected: Bool = false, inSync: Bool = false, lagBytes: Int = 0, logGeneration: UInt64 = 0, logOffset: Int = 0,
        lastContactSecondsAgo: Double? = nil, detaches: Int = 0, resyncs: Int = 0, promotions: Int = 0
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
        self.detaches = detaches
        self.resyncs = resyncs
        self.promotions = promotions
    }
}

/// The role of a server without replication: a primary that always takes writes. POST
/// /v1/promote answers that it already is one (epoch 0); GET /v1/replication reports replication
/// off.
public struct StandalonePrimary: ServerRole {
    public init() {}
    public var roleName: String { "primary" }
    public var writeRefusal: WriteRefusal? { nil }
    public var replicationStatus: ReplicationStatus? { nil }
    public func promote() -> PromotionOutcome { .alreadyPrimary(epoch: 0) }
}
