/// Which side of primary/backup replication a server is on, as GET /v1/role, GET
/// /v1/replication and the `smalldb_role` series report it (`rawValue`). A server without
/// replication is a primary.
///
/// Defined here, below both the replication layer (which decides the role) and the HTTP front
/// (which reports it), so that neither imports the other and no adapter translates between two
/// copies.
public enum ReplicationRole: String, Sendable {
    case primary
    case backup
}
