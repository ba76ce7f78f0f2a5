/// Where checkpoints and the version markers live: checkpoint.N, version and newVersion.
///
/// The markers are the commit points of the version switch (see `Checkpointer`), so they live
/// with the snapshots they commit. Every mutating call is durable when it returns (file and
/// directory synced), except where it says otherwise.
public protocol SnapshotStore: AnyObject, Sendable {
    /// The generations that have a committed checkpoint.N file, ascending (no temporaries).
    func checkpointGenerations() throws(DatabaseError) -> [UInt64]
    /// The whole content of checkpoint.N (for tests and tools: the engine reads through
    /// `openCheckpoint`, in bounded pieces).
    func readCheckpoint(_ generation: UInt64) throws(DatabaseError) -> [UInt8]
    /// Opens checkpoint.N to read it in pieces; the handle keeps reading that file even if
    /// checkpoint.N is deleted meanwhile (`CheckpointFile`).
    func openCheckpoint(_ generation: UInt64) throws(DatabaseError) -> any CheckpointFile
    /// Writes checkpoint.N: `produce` calls its argument with consecutive pieces of the file; they
    /// go to checkpoint.N.tmp, which is synced and then renamed to checkpoint.N, and the directory
    /// is synced. If anything fails the temporary is removed and checkpoint.N is untouched.
    func writeCheckpoint(
        _ generation: UInt64,
        _ produce: (_ write: ([UInt8]) throws(DatabaseError) -> Void) throws(DatabaseError) -> Void
    ) throws(DatabaseError)
    /// Creates checkpoint.N.tmp (replacing a leftover) to be written piece by piece, verified and
    /// only then committed as checkpoint.N (`CheckpointTemporary`).
    func createCheckpointTemporary(_ generation: UInt64) throws(DatabaseError) -> any CheckpointTemporary
    /// Deletes checkpoint.N. Deleting a missing file is not an error.
    func removeCheckpoint(_ generation: UInt64) throws(DatabaseError)
    /// The bytes still free for this process on the file system that holds the checkpoints (statvfs:
    /// available blocks × fragment size), or nil if the store cannot tell: how a replica bounds the
    /// snapshot a primary announces before writing any of it.
    func availableBytes() throws(DatabaseError) -> UInt64?

    /// The generation in `version`, or nil if the file does not exist. A file that exists but does
    /// not hold a number is an error.
    func readVersion() throws(DatabaseError) -> UInt64?
    /// The generation in `newVersion`, or nil if it is missing or unreadable (an interrupted switch
    /// that never reached its commit point).
    func readNewVersion() throws(DatabaseError) -> UInt64?
    /// Writes `version` (through a temporary and a rename); used to initialise a directory.
    func writeVersion(_ generation: UInt64) throws(DatabaseError)
    /// Writes `newVersion` through newVersion.tmp: the commit point of a version switch.
    func writeNewVersion(_ generation: UInt64) throws(DatabaseError)
    /// Renames `newVersion` to `version`: the last step of a version switch.
    func promoteNewVersion() throws(DatabaseError)
    func removeVersion() throws(DatabaseError)
    func removeNewVersion() throws(DatabaseError)
    /// Deletes leftovers that are never a commit point: newVersion.tmp, version.tmp,
    /// checkpoint.*.tmp and the temporaries of the metadata files.
    func removeTemporaries() throws(DatabaseError)

    /// The content of a metadata file, or nil if it does not exist.
    func readMetadata(_ file: MetadataFile) throws(DatabaseError) -> [UInt8]?
    /// Replaces a metadata file, durably and atomically (a temporary, fsync, rename, directory fsync).
    func writeMetadata(_ file: MetadataFile, _ bytes: [UInt8]) throws(DatabaseError)
    /// Deletes a metadata file, durably. Deleting a missing file is not an error.
    func removeMetadata(_ file: MetadataFile) throws(DatabaseError)
    /// How errors and logs name a metadata file (a path, for files).
    func metadataLocation(_ file: MetadataFile) -> String
    /// How errors and logs name checkpoint.N (a path, for files).
    func checkpointLocation(_ generation: UInt64) -> String
}

extension SnapshotStore {
    public func availableBytes() throws(DatabaseError) -> UInt64? { nil }
    public func checkpointLocation(_ generation: UInt64) -> String { "checkpoint.\(generation)" }
    public func metadataLocation(_ file: MetadataFile) -> String { file.rawValue }
}

/// Small files kept beside the checkpoints, written whole and atomically. The engine reads only
/// `resync`; the replication layer owns the content of `replication`.
public enum MetadataFile: String, Sendable, CaseIterable {
    /// The replication layer's state: lineage, epoch and epoch history (docs/FORMAT.md).
    case replication
    /// Present while a replica replaces its state with a snapshot (see `ReplicaSnapshotReceiver`).
    case resync
}
