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

    public init() {}

    /// Sets `key` to `value` when the batch commits.
    public mutating func put(_ key: Key, _ value: [UInt8]) {
        mutations.append(.set(key, StoredValue(value)))
    }

    /// Removes `key` when the batch commits (a missing key is not an error).
    public mutating func delete(_ key: Key) {
        mutations.append(.delete(key))
    }

    /// The number of puts and deletes.
    public var count: Int { mutations.count }
    public var isEmpty: Bool { mutations.isEmpty }

    /// The bytes this batch adds to the log: its framed record.
    var encodedSize: Int {
        var payload = mutations.count == 1 ? 0 : 5
        for mutation in mutations {
            switch mutation {
            case .set(let key, let value): payload += 9 + key.count + value.count
            case .delete(let key): payload += 9 + key.count
            }
        }
        return 4 + payload + 4
    }

    /// Checks every key and value against `limits`; the first violation is thrown.
    func validate(_ limits: DatabaseOptions.Limits) throws(DatabaseError) {
        var payloadSize = mutations.count == 1 ? 0 : 5
        for mutation in mutations {
            let key = mutation.key
            guard !key.isEmpty else { throw .emptyKey }
            guard key.count <= limits.maxKeySize else { throw .keyTooLarge(size: key.count, limit: limits.maxKeySize) }
            payloadSize += 9 + key.count
            if case .set(_, let value) = mutation {
                guard value.count <= limits.maxValueSize else {
                    throw .valueTooLarge(size: value.count, limit: limits.maxValueSize)
                }
                payloadSize += value.count
            }
        }
        guard payloadSize <= limits.maxBatchSize else { throw .batchTooLarge(size: payloadSize, limit: limits.maxBatchSize) }
    }
}
