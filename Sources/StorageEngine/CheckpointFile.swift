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
