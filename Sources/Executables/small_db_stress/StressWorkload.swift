import StorageEngine

/// The deterministic workload: which batch a writer sends as its n-th operation.
struct StressWorkload: Sendable {
    let keysPerWriter: Int
    let batchEvery: Int

    func operation(writer: Int, sequence: Int) -> WriteBatch {
        var batch = WriteBatch()
        for (key, value) in changes(writer: writer, sequence: sequence) { batch.put(key, value) }
        return batch
    }

    /// The keys and values operation `sequence` of `writer` sets.
    func changes(writer: Int, sequence: Int) -> [(Key, [UInt8])] {
        let value = Array("\(sequence)".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: 90)
        if batchEvery > 0 && sequence % batchEvery == batchEvery - 1 {
            return (0..<keysPerWriter).map { (key(writer: writer, index: $0), value) }
        }
        return [(key(writer: writer, index: sequence % keysPerWriter), value)]
    }

    func key(writer: Int, index: Int) -> Key { Key("w\(writer)-\(index)") }

    /// The state of `writer`'s keys after its operations 0 ..< `count`.
    func state(writer: Int, afterOperations count: Int) -> [Key: [UInt8]] {
        var state: [Key: [UInt8]] = [:]
        for sequence in 0..<count {
            for (key, value) in changes(writer: writer, sequence: sequence) { state[key] = value }
        }
        return state
    }
}
