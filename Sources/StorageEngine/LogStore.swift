/// Where the write-ahead log lives: the segments logfile.N, one per generation.
///
/// The engine's only way to its log (the other is `SnapshotStore`). `FileStore` is the real one;
/// `FaultInjectingStore` keeps files in memory and can fail writes and syncs or lose power.
///
/// Durability contract: bytes passed to `LogSegmentWriter.append` are durable only once `sync`
/// has returned; a created or removed segment is durable once the call that created or removed it
/// returns (implementations sync the directory).
public protocol LogStore: AnyObject, Sendable {
    /// The generations that have a segment, ascending.
    func logGenerations() throws(DatabaseError) -> [UInt64]
    /// The whole content of logfile.N.
    func readLog(_ generation: UInt64) throws(DatabaseError) -> [UInt8]
    /// Up to `maxBytes` of logfile.N from `offset` (fewer at the end of the file; none past it).
    /// Used to replay the log in bounded chunks and to stream it to a replica without reading a
    /// whole segment per step. (The default reads the whole segment: a store must implement it.)
    func readLog(_ generation: UInt64, from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8]
    /// Cuts logfile.N to `length` bytes, durably (used to drop a torn tail on recovery).
    func truncateLog(_ generation: UInt64, to length: Int) throws(DatabaseError)
    /// Creates an empty logfile.N, durably, and opens it for appending. Fails if it exists.
    func createLog(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter
    /// Opens the existing logfile.N for appending at its end.
    func openLogForAppend(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter
    /// Deletes logfile.N, durably. Deleting a missing segment is not an error.
    func removeLog(_ generation: UInt64) throws(DatabaseError)
    /// How errors and logs name logfile.N (a path, for files).
    func logLocation(_ generation: UInt64) -> String
}

extension LogStore {
    public func logLocation(_ generation: UInt64) -> String { "logfile.\(generation)" }

    public func readLog(_ generation: UInt64, from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        let whole = try readLog(generation)
        let start = min(max(0, offset), whole.count)
        return Array(whole[start..<min(whole.count, start + max(0, maxBytes))])
    }
}

/// An open log segment. Used by one thread at a time (the group committer).
public protocol LogSegmentWriter: AnyObject, Sendable {
    /// The generation of the segment.
    var generation: UInt64 { get }
    /// Bytes in the segment, including appended bytes not yet synced.
    var size: Int { get }
    /// Appends all of `bytes` (a short write is retried; an error leaves the tail unknown).
    func append(_ bytes: UnsafeRawBufferPointer) throws(DatabaseError)
    /// Makes every appended byte durable (fdatasync).
    func sync() throws(DatabaseError)
    /// Closes the segment. Unsynced bytes are not made durable by closing.
    func close()
}
