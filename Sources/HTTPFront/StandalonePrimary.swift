public import StorageEngine

/// The role of a server without replication: a primary that always takes writes. POST
/// /v1/promote answers that it already is one (epoch 0); GET /v1/replication reports replication
/// off.
public struct StandalonePrimary: ServerRole {
    public init() {}
    public var role: ReplicationRole { .primary }
    public var writeRefusal: WriteRefusal? { nil }
    public var replicationStatus: ReplicationStatus? { nil }
    public func promote() -> PromotionOutcome { .alreadyPrimary(epoch: 0) }
}
