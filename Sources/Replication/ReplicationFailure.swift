/// Why a replication step failed: a sentence for the log line that reports it.
struct ReplicationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
