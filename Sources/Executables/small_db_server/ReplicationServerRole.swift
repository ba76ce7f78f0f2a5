import HTTPFront
import Replication
import StorageEngine

/// The HTTP front's view of the replication node: HTTPFront does not import Replication, so the
/// server joins the two here. Both layers speak StorageEngine's role types (`ReplicationRole`,
/// `WriteRefusal`, `ReplicationStatus`, `PromotionOutcome`): nothing is translated.
struct ReplicationServerRole: ServerRole {
    let node: ReplicationNode

    var role: ReplicationRole { node.role }
    var writeRefusal: WriteRefusal? { node.writeRefusal }
    var replicationStatus: ReplicationStatus? { node.status }
    func promote() -> PromotionOutcome { node.promote(reason: "POST /v1/promote") }
}
