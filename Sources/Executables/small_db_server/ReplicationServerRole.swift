import HTTPFront
import Replication

/// The HTTP front's view of the replication node: HTTPFront does not import Replication, so the
/// server translates between the two layers' types here, and nowhere else.
struct ReplicationServerRole: ServerRole {
    let node: ReplicationNode

    var roleName: String { node.role.rawValue }

    var writeRefusal: WriteRefusal? {
        switch node.writeRefusal {
        case nil: nil
        case .backup: .backup
        case .noBackupInSync: .noBackupInSync
        case .fenced(let epoch): .fenced(newerEpoch: epoch)
        }
    }

    var replicationStatus: ReplicationStatus? {
        let report = node.status
        return ReplicationStatus(
            role: report.role.rawValue, epoch: report.epoch, syncMode: report.syncMode.rawValue, peer: report.peer,
            connected: report.connected, inSync: report.inSync, lagBytes: report.lagBytes,
            logGeneration: report.logGeneration, logOffset: report.logOffset,
            lastContactSecondsAgo: report.lastContactSecondsAgo, detaches: report.detaches, resyncs: report.resyncs,
            promotions: report.promotions)
    }

    func promote() -> PromotionOutcome {
        switch node.promote(reason: "POST /v1/promote") {
        case .promoted(let epoch): .promoted(epoch: epoch)
        case .alreadyPrimary(let epoch): .alreadyPrimary(epoch: epoch)
        case .refused(let why): .refused(why)
        }
    }
}
