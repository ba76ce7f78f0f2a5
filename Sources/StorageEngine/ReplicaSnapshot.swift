/// A primary's checkpoint file in one buffer (tests and tools): the replica's log continues at
/// (generation, 0).
public struct ReplicaSnapshot: Sendable {
    public var generation: UInt64
    public var checkpoint: [UInt8]

    public init(generation: UInt64, checkpoint: [UInt8]) {
        self.generation = generation
        self.checkpoint = checkpoint
    }
}
