public import StorageEngine

extension WriteRefusal {
    /// The status PUT, DELETE and POST /v1/checkpoint answer with (the message is
    /// `description`): 403 on a backup (`writes are disabled on backup`, the Go server's answer)
    /// and on a fenced primary; 503 while no backup is in sync under -repl-sync=required (a
    /// condition that passes, unlike the other two).
    public var httpStatus: Int {
        switch self {
        case .backup, .fenced: 403
        case .noBackupInSync: 503
        }
    }
}
