import Testing
@testable import StorageEngine

/// The shard's hash index of positions (`ShardContents`) against a sorted model, through random
/// inserts and removes at every position, splits and merges: every present key is found at its
/// position, absent keys are not found, and the full invariant check holds.
@Suite("Shard contents: the hash index of positions")
struct ShardContentsTests {
    private func entry(_ key: Key, _ revision: UInt64) -> MapEntry {
        MapEntry(key: key, value: StoredValue([UInt8(truncatingIfNeeded: revision)]), createRevision: revision, modRevision: revision)
    }

    private func expectMatches(_ contents: ShardContents, _ model: [Key], absent: [Key], _ context: String) {
        #expect(contents.entries.map(\.key) == model, "\(context): order")
        for (position, key) in model.enumerated() {
            #expect(contents.find(key) == position, "\(context): \(key)")
        }
        for key in absent where !model.contains(key) {
            #expect(contents.find(key) == nil, "\(context): \(key) found but absent")
        }
        contents.checkInvariants(full: true)
    }

    @Test func randomInsertsAndRemovesKeepEveryPositionReachable() {
        var generator = SystemRandomNumberGenerator()
        for trial in 0..<20 {
            var contents = ShardContents([])
            var model: [Key] = []
            let universe = (0..<2000).map { Key("k\($0)") }
            for step in 0..<1500 {
                let key = universe.randomElement(using: &generator)!
                if let position = contents.find(key) {
                    _ = contents.remove(at: position)
                    model.removeAll { $0 == key }
                } else if contents.count < OrderedMap.maxShardEntries {
                    let position = contents.insertionPoint(key)
                    #expect(position == contents.search(key).index, "the insert hint chose another position")
                    contents.insert(entry(key, UInt64(step + 1)), at: position)
                    model.append(key)
                    model.sort()
                }
                if step % 100 == 99 { expectMatches(contents, model, absent: Array(universe.prefix(50)), "trial \(trial), step \(step)") }
            }
            // Split and merge back.
            let right = contents.splitOffUpperHalf()
            let middle = model.count / 2
            expectMatches(contents, Array(model[..<middle]), absent: [], "left half")
            expectMatches(right, Array(model[middle...]), absent: [], "right half")
            contents.append(right)
            expectMatches(contents, model, absent: Array(universe.suffix(50)), "merged")
        }
    }

    /// A split moves entries instead of copying them (`splitOff`): at any position, both halves
    /// hold every entry whole (key, value bytes, revisions) and are indexed, the values stay
    /// alive exactly as long as something holds them, and a snapshot sharing the array before
    /// the split keeps all of it.
    @Test func aSplitAtAnyPositionMovesEveryEntryWhole() {
        let count = OrderedMap.maxShardEntries + 1
        let model: [MapEntry] = (0..<count).map { (index: Int) -> MapEntry in
            let key = Key(String(format: "s%04d", index))
            let value = StoredValue(Array("value \(index)".utf8))
            return MapEntry(key: key, value: value, createRevision: UInt64(index + 1), modRevision: UInt64(2 * index + 1))
        }
        func expectWhole(_ entries: [MapEntry], _ expected: ArraySlice<MapEntry>, _ context: String) {
            #expect(entries.map(\.key) == Array(expected.map(\.key)), "\(context): keys")
            #expect(entries.map(\.value.bytes) == expected.map(\.value.bytes), "\(context): values")
            #expect(entries.map(\.createRevision) == expected.map(\.createRevision), "\(context): create revisions")
            #expect(entries.map(\.modRevision) == expected.map(\.modRevision), "\(context): mod revisions")
        }
        for middle in [1, 2, count / 3, count / 2, count - 2, count - 1] {
            var left = ShardContents(model)
            let snapshot = left.entries
            let right = left.splitOff(from: middle)
            expectWhole(left.entries, model[..<middle], "left of \(middle)")
            expectWhole(right.entries, model[middle...], "right of \(middle)")
            expectWhole(snapshot, model[...], "snapshot taken before the split at \(middle)")
            let leftKeys: [Key] = model[..<middle].map { $0.key }
            let rightKeys: [Key] = model[middle...].map { $0.key }
            expectMatches(left, leftKeys, absent: [model[middle].key], "left of \(middle)")
            expectMatches(right, rightKeys, absent: [model[middle - 1].key], "right of \(middle)")
            // Unshared: the split moves in place.
            var unshared = ShardContents(model)
            let moved = unshared.splitOff(from: middle)
            expectWhole(unshared.entries, model[..<middle], "unshared left of \(middle)")
            expectWhole(moved.entries, model[middle...], "unshared right of \(middle)")
        }
        // The model's values are still whole after every split's arrays are gone.
        expectWhole(model, model[...], "the model")
    }

    /// Ascending runs interleaved with others (as several writers' sequence numbers are): the
    /// insert hint must choose the binary search's position every time, hit or miss.
    @Test func theInsertHintAgreesWithTheBinarySearch() {
        var contents = ShardContents([])
        var model: [Key] = []
        for step in 0..<OrderedMap.maxShardEntries {
            let run = step % 3  // three interleaved ascending runs
            let key = Key("run\(run)-" + String(repeating: "0", count: 4 - String(step).count) + String(step))
            let position = contents.insertionPoint(key)
            #expect(position == contents.search(key).index, "step \(step)")
            contents.insert(entry(key, UInt64(step + 1)), at: position)
            model.append(key)
            model.sort()
        }
        expectMatches(contents, model, absent: [Key("run9")], "interleaved runs")
        var ascending = ShardContents([])
        for step in 0..<100 {
            let key = Key(String(format: "a%04d", step))
            #expect(ascending.insertionPoint(key) == step)
            ascending.insert(entry(key, UInt64(step + 1)), at: step)
        }
    }

    /// Keys whose home slots collide (one key's probe run wraps past the last slot): removal's
    /// backward shift must keep the wrapped members reachable.
    @Test func aFullShardOfCollidingKeysStaysReachableThroughRemovals() {
        var contents = ShardContents([])
        var model: [Key] = []
        for index in 0..<(OrderedMap.maxShardEntries + 1) {
            let key = Key("collide-\(index)")
            contents.insert(entry(key, UInt64(index + 1)), at: contents.search(key).index)
            model.append(key)
        }
        model.sort()
        expectMatches(contents, model, absent: [Key("missing")], "full")
        while !model.isEmpty {
            let key = model.remove(at: model.count / 3)
            _ = contents.remove(at: contents.find(key)!)
            if model.count % 64 == 0 { expectMatches(contents, model, absent: [key], "\(model.count) left") }
        }
        #expect(contents.count == 0)
    }
}

@Suite("Key prefixes for searching")
struct KeyPrefixTests {
    /// When two keys' 16-byte prefixes differ, they order the keys exactly as `compare` does;
    /// the directory's search relies on it. Short, long, zero-padded and 0xFF-heavy keys.
    @Test func differingPrefixesOrderKeysAsCompareDoes() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x00, 0x01, 0x61, 0x7F, 0x80, 0xFE, 0xFF]
        var decided = 0
        for _ in 0..<20_000 {
            let left = Key((0..<Int.random(in: 0...20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            let right = Key((0..<Int.random(in: 0...20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            let byPrefix = left.sortPrefix.compare(right.sortPrefix)
            if byPrefix != 0 {
                #expect(byPrefix == left.compare(right), "\(left) vs \(right)")
                decided += 1
            }
            #expect(left.compare(right) == (left.bytes.lexicographicallyPrecedes(right.bytes) ? -1 : (left.bytes == right.bytes ? 0 : 1)))
        }
        #expect(decided > 10_000)
    }
}
