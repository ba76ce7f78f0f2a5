/// A primary's checkpoint file open for streaming to a replica (`Database.snapshotSourceForReplica`):
/// read it in pieces, then `close` it. The replica's log continues at (generation, 0).
public final class ReplicaSnapshotSource: Sendable {
    public let generation: UInt64
    private let file: any CheckpointFile

    init(generation: UInt64, file: any CheckpointFile) {
        self.generation = generation
        self.file = file
    }

    deinit { file.close() }

    /// The file's size in bytes.
    public var size: Int { file.size }

    /// Up to `maxBytes` from `offset`: fewer only at the end of the file.
    public func read(from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        try file.read(from: offset, maxBytes: maxBytes)
    }

    public func close() { file.close() }
}
