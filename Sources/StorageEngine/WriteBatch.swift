import WireProtocol

/// Puts and deletes that commit together: after a crash either all of them are there or none.
///
/// A batch of one change is written as the Go small-db's plain set/delete record; a batch of
/// several as one batch record under one checksum (docs/FORMAT.md). An empty batch writes nothing
/// and succeeds. Within a batch, later changes to a key win over earlier ones.
public struct WriteBatch: Sendable {
    enum Mutation: Sendable {
        case set(Key, StoredValue)
        case delete(Key)

        var key: Key {
            switch self {
            case .set(let key, _), .delete(let key): key
            }
        }
    }

    private(set) var mutations: [Mutation] = []
    /// What must hold when the batch reaches the committer, checked in order (`require`).
    private(set) var conditions: [(key: Key, condition: WriteCondition)] = []
    /// On a backup: where each of the primary's records ends (mutation counts), when the batch
    /// holds several records. Each record is one revision; nil means one record.
    var recordEnds: [Int]? = nil

    public init() {}

    /// Commits the batch only if `condition` holds for `key` at commit time, against the state
    /// left by every write committed before it (including earlier writes of the same group
    /// commit round). If any condition fails, nothing of the batch is written and the write
    /// fails with `DatabaseError.conditionFailed`, naming every condition that failed.
    public mutating func require(_ key: Key, _ condition: WriteCondition) {
        conditions.append((key, condition))
    }

    /// The number of conditions (`require`).
    public var conditionCount: Int { conditions.count }

    /// Sets `key` to `value` when the batch commits.
    public mutating func put(_ key: Key, _ value: [UInt8]) {
        mutations.append(.set(key, StoredValue(value)))
    }

    /// Removes `key` when the batch commits (a missing key is not an error).
    public mutating func delete(_ key: Key) {
        mutations.append(.delete(key))
    }

    /// Appends a change decoded from a replicated WAL record (no copy of the value's bytes beyond
    /// the stored value itself).
    mutating func append(_ mutation: Mutation) {
        mutations.append(mutation)
    }

    /// The number of puts and deletes.
    public var count: Int { mutations.count }
    /// True when the batch writes nothing (it may still carry conditions: then it only checks them).
    public var isEmpty: Bool { mutations.isEmpty }

    /// Checks every key and value against `limits`; the first violation is thrown.
    func validate(_ limits: DatabaseOptions.Limits) throws(DatabaseError) {
        // The record's payload size, as WALEncoder lays it out (docs/FORMAT.md).
        var payloadSize = mutations.count == 1 ? 0 : WALFormat.batchHeaderSize
        for mutation in mutations {
            let key = mutation.key
            guard !key.isEmpty else { throw .emptyKey }
            guard key.count <= limits.maxKeySize else { throw .keyTooLarge(size: key.count, limit: limits.maxKeySize) }
            payloadSize += WALFormat.entryHeaderSize + key.count
            if case .set(_, let value) = mutation {
                guard value.count <= limits.maxValueSize else {
                    throw .valueTooLarge(size: value.count, limit: limits.maxValueSize)
                }
                payloadSize += value.count
            }
        }
        for (key, condition) in conditions {
            guard !key.isEmpty else { throw .emptyKey }
            guard key.count <= limits.maxKeySize else { throw .keyTooLarge(size: key.count, limit: limits.maxKeySize) }
            if case .value(let bytes) = condition, bytes.count > limits.maxValueSize {
                throw .valueTooLarge(size: bytes.count, limit: limits.maxValueSize)
            }
        }
        guard payloadSize <= limits.maxBatchSize else { throw .batchTooLarge(size: payloadSize, limit: limits.maxBatchSize) }
    }
}
