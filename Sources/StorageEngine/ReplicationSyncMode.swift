/// What a primary does while no backup is in sync (`-repl-sync`; `rawValue` is the flag's value
/// and what GET /v1/replication reports as `sync_mode`).
public enum ReplicationSyncMode: String, Sendable, CaseIterable {
    /// Detach a backup that stops acknowledging and go on alone; it catches up when it returns.
    /// Writes stay available; a failover while detached loses what the backup never received.
    case available
    /// Refuse writes (503) while no backup is in sync: nothing is acknowledged that only one
    /// node holds, at the price of availability.
    case required
}
