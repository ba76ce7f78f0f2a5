public import StorageEngine

/// What the HTTP front needs from replication: whether this server is a primary or a backup,
/// whether it takes writes now, its replication figures, and promotion. The replication layer
/// implements it (through an adapter in small_db_server: this module does not import
/// Replication; the types it speaks in, `ReplicationRole`, `WriteRefusal`, `ReplicationStatus`
/// and `PromotionOutcome`, are StorageEngine's, which both import); a server without
/// replication is a `StandalonePrimary`.
///
/// Every property is read on an event loop's thread, once per request that needs it, so the role
/// can change at any time (a backup promoted, a primary fenced) and the next request sees it.
/// Reads must be cheap and must not block: a lock held briefly, an atomic.
public protocol ServerRole: Sendable {
    /// Primary or backup, as GET /v1/role reports it.
    var role: ReplicationRole { get }
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
