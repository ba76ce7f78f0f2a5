/// What the routes are called in metrics: a fixed, small set (a label per key would be unbounded).
/// `kv` is the single-key route; `kv_list` the listing (GET /v1/kv?…), `txn` POST /v1/txn.
enum RouteName: String, Sendable, CaseIterable {
    case health, role, writable, kv, checkpoint, metrics, replication, promote, other
    case kvList = "kv_list"
    case txn
}
