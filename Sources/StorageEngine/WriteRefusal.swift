/// Why a server refuses client writes (PUT, DELETE, POST /v1/txn, POST /v1/checkpoint) right now.
/// `description` is the message the HTTP front answers with (its status is
/// `WriteRefusal.httpStatus`, in HTTPFront).
public enum WriteRefusal: Sendable, Equatable, CustomStringConvertible {
    /// A backup: its state comes from its primary only. `writes are disabled on backup` (the Go
    /// server's message).
    case backup
    /// A primary with -repl-sync=required and no backup in sync.
    case noBackupInSync
    /// A primary that met a peer with a newer epoch (that one) and stepped down to read-only,
    /// until restarted as a backup.
    case fenced(newerEpoch: UInt64)

    public var description: String {
        switch self {
        case .backup: "writes are disabled on backup"
        case .noBackupInSync: "no backup is in sync and -repl-sync=required: write refused"
        case .fenced(let epoch): "this primary was superseded by a newer one (epoch \(epoch)): read-only"
        }
    }
}
