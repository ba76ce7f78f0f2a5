import Platform
import StorageEngine
import WireProtocol

/// POST /v1/promote and GET /v1/replication: the replication layer's state, through `ServerRole`.
struct ReplicationHandlers: Sendable {
    let role: any ServerRole

    /// 200 `{"role":"primary","epoch":N}` when promoted or already a primary; 409 with the reason
    /// when the role refuses.
    ///
    /// A promotion stops the backup's replication threads and writes a file durably: it runs on
    /// a thread of its own, never on the event loop, and the response follows when it is done.
    func promote(_ responder: Responder) {
        let role = self.role
        startDetachedThread { ReplicationHandlers.answer(role.promote(), responder) }
    }

    private static func answer(_ outcome: PromotionOutcome, _ responder: Responder) {
        switch outcome {
        case .promoted(let epoch), .alreadyPrimary(let epoch):
            responder.send(.json(status: 200, body: Array("{\"role\":\"primary\",\"epoch\":\(epoch)}\n".utf8)), route: .promote)
        case .refused(let why):
            responder.send(.json(status: 409, error: why), route: .promote)
        }
    }

    /// 200 with the figures of `ReplicationStatus`, or `{"role":…,"replication":"off"}` for a
    /// server without replication.
    func status(_ responder: Responder) {
        let body = ReplicationHandlers.body(role: role.role, writable: role.writeRefusal == nil, role.replicationStatus)
        responder.send(.json(status: 200, body: body), route: .replication)
    }

    /// `writable` follows `role`: whether writes are accepted now (`ServerRole.writeRefusal`).
    static func body(role: ReplicationRole, writable: Bool, _ status: ReplicationStatus?) -> [UInt8] {
        var body = Array(#"{"role":"#.utf8)
        func field(_ name: String, _ value: String) {
            body.append(contentsOf: Array(",\"\(name)\":\(value)".utf8))
        }
        guard let status else {
            JSONWriter.appendString(role.rawValue, to: &body)
            field("writable", String(writable))
            body.append(contentsOf: Array(#","replication":"off"}"#.utf8))
            body.append(0x0A)
            return body
        }
        JSONWriter.appendString(status.role.rawValue, to: &body)
        field("writable", String(writable))
        field("epoch", String(status.epoch))
        body.append(contentsOf: Array(#","sync_mode":"#.utf8))
        JSONWriter.appendString(status.syncMode.rawValue, to: &body)
        body.append(contentsOf: Array(#","peer":"#.utf8))
        if let peer = status.peer { JSONWriter.appendString(peer, to: &body) } else { body.append(contentsOf: Array("null".utf8)) }
        field("connected", String(status.connected))
        field("in_sync", String(status.inSync))
        field("lag_bytes", String(status.lagBytes))
        field("log_generation", String(status.logGeneration))
        field("log_offset", String(status.logOffset))
        field("last_contact_seconds_ago", status.lastContactSecondsAgo.map(ReplicationHandlers.seconds) ?? "null")
        field("detaches", String(status.detaches))
        field("resyncs", String(status.resyncs))
        field("promotions", String(status.promotions))
        body.append(contentsOf: Array("}\n".utf8))
        return body
    }

    /// Seconds as a JSON number, to the millisecond: `0.1`, `2`, `1234.567`. Negative values are
    /// 0; a value that is not finite is `null`.
    static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        let rounded = (max(0, value) * 1000).rounded() / 1000
        if rounded == rounded.rounded(), rounded < 1e15 { return String(Int64(rounded)) }
        return String(rounded)
    }
}
