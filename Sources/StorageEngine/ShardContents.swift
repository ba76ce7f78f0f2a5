/// One shard's keys: its entries in key order, and a hash index of their positions.
///
/// Why the index: a point read that binary-searches 448 entries of 40 bytes touches about eight
/// cache lines of a shard that is rarely in cache (perf: most of a get's time). Through the index
/// it touches two: the slot and the entry. Ranges still binary-search (`search`), because they
/// need the position of keys that are absent.
///
/// The index is open addressing with linear probing over `slotCount` 16-bit slots (2 KB), each 0
/// (empty) or an entry's position + 1. `slotCount` is at least twice the most a shard holds
/// (`OrderedMap.maxShardEntries` + 1, just before it splits), so the load stays at or below 1/2.
///
/// What must stay true (checked by `checkInvariants` in debug builds and by the tests): every
/// entry's position is in exactly one slot, reachable from its key's home slot without crossing
/// an empty slot; no slot holds anything else; entries are strictly ascending.
struct ShardContents: Sendable {
    private(set) var entries: [MapEntry]
    private var slots: [UInt16]
    /// Where the last insert went: keys written in ascending runs (a writer's sequence numbers)
    /// usually belong right after it, which two comparisons confirm without a binary search.
    private var lastInsert = 0

    static let slotCount = 1024
    private static let slotMask = slotCount - 1

    init(_ entries: [MapEntry]) {
        precondition(entries.count <= OrderedMap.maxShardEntries + 1, "a shard of \(entries.count) entries")
        self.entries = entries
        slots = [UInt16](repeating: 0, count: ShardContents.slotCount)
        rebuildIndex()
    }

    var count: Int { entries.count }

    @inline(__always)
    private static func home(of key: Key) -> Int {
        Int(truncatingIfNeeded: key.shardHash >> 54) & slotMask
    }

    // MARK: Reads

    /// The position of `key`, if present: one slot probe (rarely more) and one key comparison.
    @inline(__always)
    func find(_ key: Key) -> Int? {
        slots.withUnsafeBufferPointer { slots in
            entries.withUnsafeBufferPointer { entries in
                var slot = ShardContents.home(of: key)
                while true {
                    let value = Int(slots[slot])
                    if value == 0 { return nil }
                    if entries[value - 1].key == key { return value - 1 }
                    slot = (slot + 1) & ShardContents.slotMask
                }
            }
        }
    }

    /// The position of `key`, or where it would be inserted.
    func search(_ key: Key) -> (index: Int, found: Bool) {
        OrderedMap.search(entries, key)
    }

    /// Where an absent `key` belongs: just after the last insert if it fits there (checked by
    /// comparing with both neighbours), else by binary search.
    func insertionPoint(_ key: Key) -> Int {
        let hint = lastInsert + 1
        if hint <= entries.count, entries[hint - 1].key < key, hint == entries.count || key < entries[hint].key {
            return hint
        }
        return search(key).index
    }

    // MARK: Writes (single writer)

    /// Gives the entry at `position` a new value, modified at `revision`.
    mutating func update(at position: Int, value: StoredValue, revision: UInt64) {
        entries[position].value = value
        entries[position].modRevision = revision
    }

    /// Inserts `entry` at `position` (where `search` said it belongs).
    mutating func insert(_ entry: MapEntry, at position: Int) {
        entries.insert(entry, at: position)
        lastInsert = position
        // Every position from `position` on moved up by one.
        let moved = UInt16(position + 1)
        shiftSlots(from: moved, by: 1)
        var slot = ShardContents.home(of: entry.key)
        while slots[slot] != 0 { slot = (slot + 1) & ShardContents.slotMask }
        slots[slot] = moved
        checkInvariants()
        assert(find(entry.key) == position)
    }

    /// Removes the entry at `position` and returns it.
    mutating func remove(at position: Int) -> MapEntry {
        let value = UInt16(position + 1)
        var hole = ShardContents.home(of: entries[position].key)
        while slots[hole] != value { hole = (hole + 1) & ShardContents.slotMask }
        // Backward-shift deletion: move later members of the probe run into the hole when their
        // home slot does not lie cyclically in (hole, here], so every one stays reachable.
        var here = hole
        while true {
            here = (here + 1) & ShardContents.slotMask
            let occupant = slots[here]
            if occupant == 0 { break }
            let home = ShardContents.home(of: entries[Int(occupant) - 1].key)
            let reachableFromHole = hole <= here ? (home > hole && home <= here) : (home > hole || home <= here)
            if !reachableFromHole {
                slots[hole] = occupant
                hole = here
            }
        }
        slots[hole] = 0
        let removed = entries.remove(at: position)
        shiftSlots(from: value + 1, by: -1)
        checkInvariants()
        return removed
    }

    /// Adds `delta` (1 or −1) to every slot holding `threshold` or more (positions that moved).
    /// Written as a select with wrapping arithmetic so that the compiler vectorizes it: a loop
    /// with a branch and a checked add per slot was a fifth of the committer's time at 256
    /// writers (perf), and `SIMD.replacing(with:where:)` compiled to a lane-by-lane loop. Empty
    /// slots (0) are below any threshold and stay empty.
    private mutating func shiftSlots(from threshold: UInt16, by delta: Int) {
        let step: UInt16 = delta > 0 ? 1 : UInt16.max  // + 1, or − 1 in wrapping arithmetic
        slots.withUnsafeMutableBufferPointer { slots in
            for index in 0..<slots.count {
                let value = slots[index]
                slots[index] = value >= threshold ? value &+ step : value
            }
        }
    }

    /// Moves the upper half of the entries to a new shard's contents and returns them.
    mutating func splitOffUpperHalf() -> ShardContents {
        splitOff(from: entries.count / 2)
    }

    /// Moves the entries from position `middle` on (0 < middle < count) to a new shard's
    /// contents and returns them.
    mutating func splitOff(from middle: Int) -> ShardContents {
        precondition(middle > 0 && middle < entries.count, "a split at \(middle) of \(entries.count)")
        var right: [MapEntry] = []
        right.reserveCapacity(OrderedMap.maxShardEntries)
        right.append(contentsOf: entries[middle...])
        var left: [MapEntry] = []
        left.reserveCapacity(OrderedMap.maxShardEntries)
        left.append(contentsOf: entries[..<middle])
        self = ShardContents(left)
        return ShardContents(right)
    }

    /// Appends every entry of `other` (whose keys all sort after these).
    mutating func append(_ other: ShardContents) {
        entries.append(contentsOf: other.entries)
        rebuildIndex()
    }

    private mutating func rebuildIndex() {
        slots.withUnsafeMutableBufferPointer { slots in
            slots.update(repeating: 0)
            for (position, entry) in entries.enumerated() {
                var slot = ShardContents.home(of: entry.key)
                while slots[slot] != 0 { slot = (slot + 1) & ShardContents.slotMask }
                slots[slot] = UInt16(position + 1)
            }
        }
        checkInvariants(full: true)
    }

    /// The invariants in the type's comment (debug builds only). After each insert and remove
    /// only the slots' one-to-one match with positions and the entry just touched are checked
    /// (the whole check costs a probe per entry); `rebuildIndex` and the tests check everything.
    func checkInvariants(full: Bool = false) {
        #if DEBUG
        var seen = [Bool](repeating: false, count: entries.count)
        for value in slots where value != 0 {
            assert(Int(value) <= entries.count && !seen[Int(value) - 1], "a slot names a missing or repeated position")
            seen[Int(value) - 1] = true
        }
        assert(seen.allSatisfy { $0 }, "an entry is missing from the index")
        guard full else { return }
        for position in entries.indices {
            assert(find(entries[position].key) == position, "an entry is unreachable from its home slot")
            if position > 0 { assert(entries[position - 1].key < entries[position].key, "entries out of order") }
        }
        #endif
    }
}
