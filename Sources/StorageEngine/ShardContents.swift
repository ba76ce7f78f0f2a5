/// One shard's keys: its entries in key order, and a hash index of their positions.
///
/// Why the index: a point read that binary-searches 448 entries of 40 bytes touches about eight
/// cache lines of a shard that is rarely in cache (perf: most of a get's time). Through the index
/// it touches two: the slot and the entry. Ranges still binary-search (`search`), because they
/// need the position of keys that are absent.
///
/// The index is open addressing with linear probing over `slotCount` 16-bit slots (1 KB). A
/// slot's low byte is 0 (empty) or an entry's position + 1; its high byte is that entry's key's
/// fingerprint (8 more bits of its hash), so a probe past another key's slot rarely reads that
/// key: an insert, whose key is absent, would otherwise miss the cache on a neighbour's entry at
/// most probes (perf: a third of `OrderedMap.set`'s own time). `slotCount` is at least twice the
/// most a shard holds (`OrderedMap.maxShardEntries` + 1, just before it splits), so the load stays
/// at or below 1/2, and that most + 1 fits in the low byte.
///
/// What must stay true (checked by `checkInvariants` in debug builds and by the tests): every
/// entry's position is in exactly one slot, with its key's fingerprint, reachable from its key's
/// home slot without crossing an empty slot; no slot holds anything else; entries are strictly
/// ascending.
struct ShardContents: Sendable {
    private(set) var entries: [MapEntry]
    private var slots: [Slot]
    /// Where the last insert went: keys written in ascending runs (a writer's sequence numbers)
    /// usually belong right after it, which two comparisons confirm without a binary search.
    private var lastInsert = 0

    /// A slot: fingerprint << 8 | (position + 1), or 0 in the low byte if empty. 512 of them
    /// (1 KB) index a shard of at most 255 entries: half the 2 KB of 1,024 slots for 513 entries
    /// that shards of 512 needed, so more of them stay cached between reads (the slot's miss was
    /// a tenth of a point read's time), and an insert shifts half as many positions.
    typealias Slot = UInt16
    static let slotCount = 512
    private static let slotMask = slotCount - 1
    private static let positionMask: Slot = 0xFF
    private static let homeShift = UInt64(64 - slotCount.trailingZeroBitCount)

    init(_ entries: [MapEntry]) {
        precondition(entries.count <= OrderedMap.maxShardEntries + 1, "a shard of \(entries.count) entries")
        assert(OrderedMap.maxShardEntries + 1 <= Int(ShardContents.positionMask) && 2 * (OrderedMap.maxShardEntries + 1) <= ShardContents.slotCount,
               "a shard's most entries must fit in a slot, at a load of 1/2 or less")
        self.entries = entries
        slots = [Slot](repeating: 0, count: ShardContents.slotCount)
        rebuildIndex()
    }

    var count: Int { entries.count }

    /// Where `key`'s probe starts (the hash's top bits), and its fingerprint (the next 8 bits),
    /// already in a slot's high byte (bits 47 to 54 of the hash, below the 9 of the home slot).
    @inline(__always)
    private static func home(of key: Key) -> (slot: Int, fingerprint: Slot) {
        let hash = key.shardHash
        return (Int(truncatingIfNeeded: hash >> homeShift) & slotMask, Slot(truncatingIfNeeded: hash >> (homeShift - 16)) & 0xFF00)
    }

    @inline(__always)
    private static func slot(position: Int, fingerprint: Slot) -> Slot {
        fingerprint | Slot(position + 1)
    }

    // MARK: Reads

    /// The position of `key`, if present: one slot probe (rarely more) and one key comparison.
    @inline(__always)
    func find(_ key: Key) -> Int? {
        slots.withUnsafeBufferPointer { slots in
            entries.withUnsafeBufferPointer { entries in
                var (slot, fingerprint) = ShardContents.home(of: key)
                while true {
                    let value = slots[slot]
                    let position = Int(value & ShardContents.positionMask)
                    if position == 0 { return nil }
                    if value & ~ShardContents.positionMask == fingerprint && entries[position - 1].key == key { return position - 1 }
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
        shiftSlots(from: Slot(position + 1), by: 1)
        var (slot, fingerprint) = ShardContents.home(of: entry.key)
        while slots[slot] & ShardContents.positionMask != 0 { slot = (slot + 1) & ShardContents.slotMask }
        slots[slot] = ShardContents.slot(position: position, fingerprint: fingerprint)
        checkInvariants()
        assert(find(entry.key) == position)
    }

    /// Removes the entry at `position` and returns it.
    mutating func remove(at position: Int) -> MapEntry {
        let value = Slot(position + 1)
        var hole = ShardContents.home(of: entries[position].key).slot
        while slots[hole] & ShardContents.positionMask != value { hole = (hole + 1) & ShardContents.slotMask }
        // Backward-shift deletion: move later members of the probe run into the hole when their
        // home slot does not lie cyclically in (hole, here], so every one stays reachable.
        var here = hole
        while true {
            here = (here + 1) & ShardContents.slotMask
            let occupant = slots[here]
            let occupantPosition = Int(occupant & ShardContents.positionMask)
            if occupantPosition == 0 { break }
            let home = ShardContents.home(of: entries[occupantPosition - 1].key).slot
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

    /// Adds `delta` (1 or −1) to every slot whose position + 1 is `threshold` or more (positions
    /// that moved). Written as a select with wrapping arithmetic so that the compiler vectorizes
    /// it: a loop with a branch and a checked add per slot was a fifth of the committer's time at
    /// 256 writers (perf), and `SIMD.replacing(with:where:)` compiled to a lane-by-lane loop.
    /// Empty slots (0 in the low byte) are below any threshold and stay empty; the low byte
    /// never carries into the fingerprint or borrows from it (it stays between 1 and 255).
    private mutating func shiftSlots(from threshold: Slot, by delta: Int) {
        let step: Slot = delta > 0 ? 1 : Slot.max  // + 1, or − 1 in wrapping arithmetic
        slots.withUnsafeMutableBufferPointer { slots in
            for index in 0..<slots.count {
                let value = slots[index]
                slots[index] = value & ShardContents.positionMask >= threshold ? value &+ step : value
            }
        }
    }

    /// Moves the upper half of the entries to a new shard's contents and returns them.
    mutating func splitOffUpperHalf() -> ShardContents {
        splitOff(from: entries.count / 2)
    }

    /// Moves the entries from position `middle` on (0 < middle < count) to a new shard's
    /// contents and returns them.
    ///
    /// The entries are moved, not copied: a copy retained each moved entry's value and the old
    /// array's release then released it, a cache miss on every value's object twice (perf: most
    /// of a split's time, and splits were a quarter of the committer's map time at 256 writers).
    /// The vacated tail is refilled with one shared placeholder (its object is hot) so that the
    /// array can drop it normally.
    mutating func splitOff(from middle: Int) -> ShardContents {
        precondition(middle > 0 && middle < entries.count, "a split at \(middle) of \(entries.count)")
        let moving = entries.count - middle
        let right = [MapEntry](unsafeUninitializedCapacity: OrderedMap.maxShardEntries + 1) { buffer, initialized in
            entries.withUnsafeMutableBufferPointer { entries in
                let tail = entries.baseAddress! + middle
                buffer.baseAddress!.moveInitialize(from: tail, count: moving)
                tail.initialize(repeating: ShardContents.placeholder, count: moving)
            }
            initialized = moving
        }
        entries.removeLast(moving)
        rebuildIndex()
        return ShardContents(right)
    }

    /// What `splitOff` leaves in the slots it vacated, for an instant.
    private static let placeholder = MapEntry(
        key: Key(bytes: UnsafeRawBufferPointer(start: nil, count: 0)), value: StoredValue([]), createRevision: 0, modRevision: 0)

    /// Appends every entry of `other` (whose keys all sort after these).
    mutating func append(_ other: ShardContents) {
        entries.append(contentsOf: other.entries)
        rebuildIndex()
    }

    private mutating func rebuildIndex() {
        lastInsert = 0
        slots.withUnsafeMutableBufferPointer { slots in
            slots.update(repeating: 0)
            for (position, entry) in entries.enumerated() {
                var (slot, fingerprint) = ShardContents.home(of: entry.key)
                while slots[slot] & ShardContents.positionMask != 0 { slot = (slot + 1) & ShardContents.slotMask }
                slots[slot] = ShardContents.slot(position: position, fingerprint: fingerprint)
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
        for value in slots where value & ShardContents.positionMask != 0 {
            let position = Int(value & ShardContents.positionMask) - 1
            assert(position < entries.count && !seen[position], "a slot names a missing or repeated position")
            assert(value & ~ShardContents.positionMask == ShardContents.home(of: entries[position].key).fingerprint, "a slot's fingerprint is not its key's")
            seen[position] = true
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
