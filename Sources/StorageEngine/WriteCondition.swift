/// What a write may require of a key before it commits (the paper's step 1: preconditions are
/// verified against the in-memory state by the single writer, so of two writers racing on one
/// revision exactly one wins).
public enum WriteCondition: Sendable, Equatable, CustomStringConvertible {
    /// The key does not exist (create only).
    case absent
    /// The key exists.
    case present
    /// The key exists and was last modified at this revision (compare-and-set).
    case modRevision(UInt64)
    /// The key exists and its value is exactly these bytes.
    case value([UInt8])

    public var description: String {
        switch self {
        case .absent: "absent"
        case .present: "present"
        case .modRevision(let revision): "mod revision \(revision)"
        case .value(let bytes): "value of \(bytes.count) bytes"
        }
    }

    /// Whether the condition holds for a key whose state is `state` (nil: absent).
    func holds(for state: (modRevision: UInt64, value: StoredValue)?) -> Bool {
        switch self {
        case .absent: return state == nil
        case .present: return state != nil
        case .modRevision(let revision): return state?.modRevision == revision
        case .value(let bytes):
            guard let state else { return false }
            return state.value.withUnsafeBytes { $0.elementsEqual(bytes) }
        }
    }
}

/// A condition that did not hold: the key, what was required, and the key's mod revision when it
/// was checked (0 if the key did not exist).
public struct ConditionFailure: Sendable, Equatable, CustomStringConvertible {
    public let key: Key
    public let condition: WriteCondition
    public let currentRevision: UInt64

    public init(key: Key, condition: WriteCondition, currentRevision: UInt64) {
        self.key = key
        self.condition = condition
        self.currentRevision = currentRevision
    }

    public var description: String {
        "\(key) required \(condition), " + (currentRevision == 0 ? "but it is absent" : "its mod revision is \(currentRevision)")
    }
}
