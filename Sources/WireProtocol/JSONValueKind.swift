/// What a JSON value is, in Go's words ("number", "bool", ...).
public enum JSONValueKind: String, Sendable, Equatable, CustomStringConvertible {
    case object, array, string, number, bool, null

    public var description: String { rawValue }
}
