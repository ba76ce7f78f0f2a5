/// An open checkpoint.N, read in pieces (`SnapshotStore.openCheckpoint`): how recovery loads a
/// checkpoint and how a primary streams one to a replica without holding the file in memory.
///
/// What must stay true: the handle reads the file it opened, even after checkpoint.N is deleted
/// (a newer checkpoint superseded it while a snapshot was still streaming): the store neither
/// truncates nor reuses a file that a handle still reads. Safe to read from several threads at once.
public protocol CheckpointFile: AnyObject, Sendable {
    /// The file's size when it was opened.
    var size: Int { get }
    /// Up to `maxBytes` from `offset`: fewer only at the end of the file, none past it.
    func read(from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8]
    /// Releases the file. Reads afterwards fail.
    func close()
}

/// checkpoint.N.tmp being written in pieces as they arrive (`SnapshotStore.createCheckpointTemporary`):
/// how a replica receives its primary's checkpoint without holding it in memory.
///
/// The steps, in order: `write` each piece, `sync`, read it back through `openForReading` to
/// verify it, then `commit` (rename to checkpoint.N, directory fsync) or `discard`. Until `commit`
/// nothing is visible under checkpoint.N, and recovery deletes a leftover temporary (never a
/// commit point). One thread at a time.
public protocol CheckpointTemporary: AnyObject, Sendable {
    var generation: UInt64 { get }
    /// Bytes written so far.
    var size: Int { get }
    /// Appends `bytes` (not durable until `sync`).
    func write(_ bytes: [UInt8]) throws(DatabaseError)
    /// Makes every written byte durable (fsync).
    func sync() throws(DatabaseError)
    /// Opens the temporary for reading (to verify and decode it before it is committed).
    func openForReading() throws(DatabaseError) -> any CheckpointFile
    /// Renames checkpoint.N.tmp to checkpoint.N and fsyncs the directory.
    func commit() throws(DatabaseError)
    /// Closes and deletes the temporary, unless it was committed. Never fails: a leftover is
    /// deleted by the next recovery.
    func discard()
}
