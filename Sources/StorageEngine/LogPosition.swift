/// A place in the log: a segment (its generation) and a byte offset in it. Records need no
/// sequence numbers: a record is named by where it starts, and a replica that holds the log up to
/// a position holds exactly the records before it.
public struct LogPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var generation: UInt64
    public var offset: Int

    public init(generation: UInt64, offset: Int) {
        self.generation = generation
        self.offset = offset
    }

    public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool {
        (lhs.generation, lhs.offset) < (rhs.generation, rhs.offset)
    }

    public var description: String { "logfile.\(generation)@\(offset)" }
}
