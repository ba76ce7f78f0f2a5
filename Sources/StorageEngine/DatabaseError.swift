import Platform

/// Everything the database can refuse or fail with. Each case carries what a user needs to act:
/// the file, the byte offset, the size and the limit.
public enum DatabaseError: Error, Sendable, Equatable, CustomStringConvertible {
    // Refused input: nothing was written.
    case emptyKey
    case keyTooLarge(size: Int, limit: Int)
    case valueTooLarge(size: Int, limit: Int)
    case batchTooLarge(size: Int, limit: Int)
    /// A listing's limit below 1.
    case invalidLimit(Int)

    // Preconditions.
    /// A condition of the batch did not hold when it reached the committer: nothing of the batch
    /// was written. Each failure names the key, the condition and the key's revision then.
    case conditionFailed([ConditionFailure])

    // State.
    /// The database was closed (or is closing).
    case closed
    /// An earlier write or sync failed; writes are refused until the database is reopened, because
    /// the log's tail is in an unknown state. `reason` is the first failure.
    case writesDisabled(reason: String)
    /// This database is a read-only replica (set by the replication layer).
    case readOnly
    /// The write is durable in this log, but the replication sink could not confirm it on the
    /// backup and was told to refuse such writes (small_db_server -repl-sync=required). It is
    /// applied here and will reach the backup when it catches up; the caller must treat the
    /// outcome as unknown, like a timeout.
    case notReplicated(reason: String)
    /// Replicated records or a mirrored segment do not fit this replica's log (a gap, an overlap,
    /// or records that do not decode): nothing was written; the replica needs a resync.
    case replicaMismatch(String)

    // Opening.
    /// The data directory is missing and creation was not asked for.
    case directoryMissing(path: String)
    /// Another open database (in this process or another) holds the directory's lock.
    case directoryLocked(path: String)
    /// A WAL record is damaged and intact records follow it: acknowledged data would be lost by
    /// cutting the log there. Reopen with `DatabaseOptions.corruptLog = .truncate` (the server's
    /// -truncate-corrupt-log) to accept the loss.
    case corruptLog(file: String, offset: Int, reason: String)
    /// A checkpoint failed its checks: it is never loaded.
    case corruptCheckpoint(file: String, reason: String)
    /// The directory's files do not form a valid state (for example a missing log segment).
    case inconsistentDirectory(String)
    /// The directory holds the marker of a snapshot install that never finished: its state is
    /// incomplete. A backup discards it and resyncs from its primary.
    case incompleteResync(path: String)

    // I/O.
    /// A system call failed. `operation` names it, `path` the file, `errno` the cause.
    case io(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .emptyKey: "the empty key is not allowed"
        case .keyTooLarge(let size, let limit): "key of \(size) bytes exceeds the limit of \(limit) bytes"
        case .valueTooLarge(let size, let limit): "value of \(size) bytes exceeds the limit of \(limit) bytes"
        case .batchTooLarge(let size, let limit): "batch of \(size) encoded bytes exceeds the limit of \(limit) bytes"
        case .invalidLimit(let limit): "a listing's limit must be at least 1 (got \(limit))"
        case .conditionFailed(let failures):
            "precondition failed: " + failures.map(\.description).joined(separator: "; ")
        case .closed: "the database is closed"
        case .writesDisabled(let reason):
            "writes are disabled after an I/O failure (\(reason)); reopen the database to recover"
        case .readOnly: "writes are disabled on backup"
        case .notReplicated(let reason):
            "the write is durable on this server but no backup confirmed it (\(reason)); it may or may not survive a failover"
        case .replicaMismatch(let why): "replication stream does not fit this replica's log: \(why)"
        case .directoryMissing(let path): "data directory \(path) does not exist (create it, or pass -create)"
        case .directoryLocked(let path):
            "data directory \(path) is in use by another process or another open database (lock held on \(path)/LOCK)"
        case .corruptLog(let file, let offset, let reason):
            "corrupt WAL record in \(file) at byte offset \(offset): \(reason); valid records follow it, so "
                + "the log was not truncated (allow truncation, small_db_server -truncate-corrupt-log, to drop everything from that offset)"
        case .corruptCheckpoint(let file, let reason): "checkpoint \(file) is damaged: \(reason)"
        case .inconsistentDirectory(let why): "inconsistent data directory: \(why)"
        case .incompleteResync(let path):
            "data directory holds \(path): a resync from a primary was interrupted and its state is incomplete; "
                + "start it again as a backup (-backup-of), which discards it and resyncs"
        case .io(let operation, let path, let errno): "\(operation) \(path) failed: \(errnoDescription(errno)) (errno \(errno))"
        }
    }
}

