public import StorageEngine
public import WireProtocol

// The engine names log positions `LogPosition` (offsets as Int, for buffers); the wire protocol
// `ReplicationPosition` (UInt64, fixed width). Both name the same (generation, offset) pair.

extension ReplicationPosition {
    public init(_ position: LogPosition) {
        self.init(generation: position.generation, offset: UInt64(position.offset))
    }
}

extension LogPosition {
    /// Nil if the offset does not fit an Int (a hostile peer's number).
    public init?(_ position: ReplicationPosition) {
        guard let offset = Int(exactly: position.offset) else { return nil }
        self.init(generation: position.generation, offset: offset)
    }
}
