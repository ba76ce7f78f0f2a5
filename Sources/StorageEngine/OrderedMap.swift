import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One key's state as the map holds it: its value and the two revisions etcd calls
/// create_revision (the write that created this incarnation of the key) and mod_revision (the
/// write that last changed it). 40 bytes.
struct MapEntry: Sendable {
    let key: Key
    var value: StoredValue
    var createRevision: UInt64
    var modRevision: UInt64
}

/// The in-memory state: keys in unsigned-byte order, split by key range into shards of at most
/// `maxShardEntries`, each a sorted array behind its own lock (docs/ARCHITECTURE.md, decision 3).
///
/// - **Point reads** find the shard in a directory (the shards' lower bounds, sorted), then
///   binary-search it: two lock acquisitions, neither shared between threads in the common case.
///   The directory is held by `stripeCount` stripes, each behind its own lock; a thread always
///   uses the stripe its thread id picks, so two reading threads do not bounce one lock's cache
///   line between cores. Only a split or merge (rare, on the writer) takes every stripe.
/// - **Ranges** are read shard after shard in key order. A page is one consistent state: the
///   writer makes `sequence` odd while it applies a round and even again after, and a reader that
///   sees it change retries (a seqlock); after `optimisticAttempts` it holds `applyLock`, which
///   the writer holds while applying.
/// - `snapshot()` copies every shard's array reference (O(shards)): the arrays are copy-on-write,
///   so a shard is physically copied only when next written, and then only that shard. This is
///   what lets a checkpoint start without stopping writers.
///
/// Lock order: stripe, then shard; `applyLock` before either. Only the group committer (and
/// recovery, before the committer starts) calls the mutating methods.
final class OrderedMap: Sendable {
    /// A shard splits in two when it would exceed this. Small enough that an insert's memmove
    /// (10 KB at most) and a shard's copy after a snapshot stay microseconds, and that a position
    /// + 1 fits in the low byte of a `ShardContents` slot (the high byte is a fingerprint).
    static let maxShardEntries = 254
    /// Shards filled by a bulk load (a sorted checkpoint) hold this many, leaving room for inserts.
    static let loadedShardEntries = 224
    static let stripeCount = 16
    static let optimisticAttempts = 4

    /// One range of keys: its sorted entries, and the least key it may hold, which is fixed for
    /// the shard's life (a split gives the new right shard its own; a merge keeps the left's).
    final class Shard: Sendable {
        let lowerBound: Key
        let contents: Lock<ShardContents>
        init(lowerBound: Key, _ contents: ShardContents) {
            self.lowerBound = lowerBound
            self.contents = Lock(contents)
        }
        convenience init(lowerBound: Key, _ entries: [MapEntry]) { self.init(lowerBound: lowerBound, ShardContents(entries)) }
    }

    /// What readers search: the shards in key order, shard i holding keys k with
    /// lowerBound(i) <= k < lowerBound(i+1); shard 0's bound is the empty key (below all).
    /// `prefixes[i]` is shard i's bound's `sortPrefix`: the search compares two words per probe
    /// and reads a bound only when the prefixes are equal.
    ///
    /// Both arrays hold plain words (no references), so that the copy a split or merge makes
    /// (the stripes share the arrays) is a memcpy: with `[Key]` and `[Shard]` it retained and
    /// later released every shard and bound, a quarter of the committer's map time at 256
    /// writers (perf). The references are unowned: `OrderedMap.owners` keeps the shards alive,
    /// and a shard leaves it only while every stripe is held (`republish`), so no reader is
    /// between a stripe and that shard.
    struct Directory: Sendable {
        private var prefixes: [KeyPrefix]
        private var shardReferences: [Unmanaged<Shard>]

        init(_ shards: [Shard]) {
            prefixes = shards.map(\.lowerBound.sortPrefix)
            shardReferences = shards.map { Unmanaged.passUnretained($0) }
        }

        var count: Int { shardReferences.count }

        /// Shard `index`, valid while the directory is (for a reader: while it holds its stripe).
        @inline(__always)
        func withShard<R>(_ index: Int, _ body: (Shard) throws -> R) rethrows -> R {
            try shardReferences[index]._withUnsafeGuaranteedRef(body)
        }

        /// Shard `index`'s bound's prefix (for the invariant check).
        func prefix(at index: Int) -> KeyPrefix { prefixes[index] }

        /// Runs `body` on shard `index`'s contents, locked.
        @inline(__always)
        func withLockedContents<R: Sendable>(_ index: Int, _ body: (inout ShardContents) -> R) -> R {
            withShard(index) { shard in shard.contents.withLock { contents in body(&contents) } }
        }

        mutating func insert(_ shard: Shard, at index: Int) {
            prefixes.insert(shard.lowerBound.sortPrefix, at: index)
            shardReferences.insert(Unmanaged.passUnretained(shard), at: index)
        }

        mutating func remove(at index: Int) {
            prefixes.remove(at: index)
            shardReferences.remove(at: index)
        }

        /// The index of the shard that holds (or would hold) `key`.
        @inline(__always)
        func index(of key: Key) -> Int {
            // The last lower bound <= key: binary search for the first bound > key, minus one.
            let prefix = key.sortPrefix
            return prefixes.withUnsafeBufferPointer { prefixes in
                var low = 1
                var high = prefixes.count
                while low < high {
                    let middle = (low + high) >> 1
                    var order = prefixes[middle].compare(prefix)
                    if order == 0 { order = withShard(middle) { $0.lowerBound.compare(key) } }
                    if order <= 0 { low = middle + 1 } else { high = middle }
                }
                return low - 1
            }
        }
    }

    /// The writer's view: the readers' directory, and the shards it refers to, which this array
    /// owns (in the same order). Only the writer changes it; it is not shared, so an insert
    /// into it moves references without retaining them.
    struct Owned: Sendable {
        var directory: Directory
        var shards: [Shard]

        init(_ shards: [Shard]) {
            self.directory = Directory(shards)
            self.shards = shards
        }

        /// What must stay true (debug builds, after every split and merge): the directory names
        /// exactly `shards`, in order, with their bounds' prefixes; the first bound is the empty
        /// key and bounds strictly ascend; every shard's keys lie within its bounds.
        func checkInvariants() {
            #if DEBUG
            assert(directory.count == shards.count && !shards.isEmpty, "the directory and its owners differ in size")
            assert(shards[0].lowerBound.count == 0, "the first shard's bound is not the empty key")
            for index in shards.indices {
                directory.withShard(index) { assert($0 === shards[index], "the directory names another shard at \(index)") }
                assert(directory.prefix(at: index) == shards[index].lowerBound.sortPrefix, "a stale prefix at \(index)")
                let upper = index + 1 < shards.count ? shards[index + 1].lowerBound : nil
                if let upper { assert(shards[index].lowerBound < upper, "bounds out of order at \(index)") }
                shards[index].contents.withLock { contents in
                    if let first = contents.entries.first { assert(!(first.key < shards[index].lowerBound), "a key below its shard's bound") }
                    if let last = contents.entries.last, let upper { assert(last.key < upper, "a key at or above the next shard's bound") }
                }
            }
            #endif
        }
    }

    private final class Stripe: Sendable {
        let directory: Lock<Directory>
        init(_ directory: Directory) { self.directory = Lock(directory) }
    }

    private let stripes: [Stripe]
    /// The writer's directory (the stripes hold the same arrays) and the shards' owners.
    private let owners: Lock<Owned>
    /// Even while no round is being applied (see the type's comment).
    private let sequence = Atomic<UInt64>(0)
    private let applyLock = Lock(())
    /// Keys and key+value bytes held, and the store revision: kept by the single writer, read by anyone.
    private let keyCount = Atomic<Int>(0)
    private let byteCount = Atomic<Int>(0)
    private let revisionCounter = Atomic<UInt64>(0)

    init() {
        let owned = Owned([Shard(lowerBound: Key(bytes: UnsafeRawBufferPointer(start: nil, count: 0)), [])])
        stripes = (0..<OrderedMap.stripeCount).map { _ in Stripe(owned.directory) }
        owners = Lock(owned)
    }

    var count: Int { keyCount.load(ordering: .relaxed) }
    var bytes: Int { byteCount.load(ordering: .relaxed) }
    /// The revision of the last write applied (0 before any).
    var revision: UInt64 { revisionCounter.load(ordering: .acquiring) }

    /// The stripe of the calling thread: its pthread id, hashed (thread descriptors are spaced by
    /// their stacks, so the low bits say little).
    @inline(__always)
    private var stripe: Stripe {
        let id = UInt64(UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))))
        return stripes[Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 60) & (OrderedMap.stripeCount - 1)]
    }

    // MARK: Point reads

    func get(_ key: Key) -> StoredValue? {
        entry(key)?.value
    }

    func entry(_ key: Key) -> MapEntry? {
        withEntry(key) { $0 }
    }

    /// Calls `body` with `key`'s entry (nil if absent) while its shard is locked: a reader that
    /// copies the value's bytes there needs no retain of the value (an atomic increment and
    /// decrement per get).
    @inline(__always)
    func withEntry<R: Sendable>(_ key: Key, _ body: (borrowing MapEntry?) -> R) -> R {
        stripe.directory.withLock { directory in
            directory.withShard(directory.index(of: key)) { shard in
                shard.contents.withLock { contents in
                    guard let position = contents.find(key) else { return body(nil) }
                    return contents.entries.withUnsafeBufferPointer { entries in body(entries[position]) }
                }
            }
        }
    }

    /// The position of `key` in `entries`, or where it would be inserted.
    @inline(__always)
    static func search(_ entries: [MapEntry], _ key: Key) -> (index: Int, found: Bool) {
        // Through a buffer pointer, comparing each probed key in place: `entries[middle].key`
        // copied the whole entry, retaining its value, which cost a cache miss on the value's
        // object at every probe (a third of a get's time, measured with perf).
        entries.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return (0, false) }
            var low = 0
            var high = buffer.count
            while low < high {
                let middle = (low + high) >> 1
                let order = OrderedMap.compareKey(of: base + middle, with: key)
                if order == 0 { return (middle, true) }
                if order < 0 { low = middle + 1 } else { high = middle }
            }
            return (low, false)
        }
    }

    /// The order of the entry's key against `key`, reading only the key's bytes in place.
    @inline(__always)
    private static func compareKey(of entry: UnsafePointer<MapEntry>, with key: Key) -> Int {
        let keyOffset = MemoryLayout<MapEntry>.offset(of: \MapEntry.key)!
        return UnsafeRawPointer(entry).advanced(by: keyOffset).assumingMemoryBound(to: Key.self).pointee.compare(key)
    }

    // MARK: Writes (single writer)

    /// Runs `body`, which applies a round's changes and returns the revision of its last write,
    /// as one step for readers of ranges: they retry (or wait) until it is over, and the store's
    /// revision moves to what `body` returned at its end.
    func applying(_ body: () -> UInt64) {
        applyLock.withLock { _ in
            sequence.add(1, ordering: .acquiringAndReleasing)
            let revision = body()
            revisionCounter.store(revision, ordering: .releasing)
            sequence.add(1, ordering: .releasing)
        }
    }

    /// Sets `key` to `value` at `revision`: a new key is created there, an existing one keeps
    /// its create revision.
    func set(_ key: Key, _ value: StoredValue, revision: UInt64) {
        let (shardIndex, shard) = owners.withLock { owned in
            let index = owned.directory.index(of: key)
            return (index, owned.shards[index])
        }
        let (inserted, oldCount, size, position) = shard.contents.withLock { contents -> (Bool, Int, Int, Int) in
            if let position = contents.find(key) {
                let old = contents.entries[position].value.count
                contents.update(at: position, value: value, revision: revision)
                return (false, old, contents.count, position)
            }
            let position = contents.insertionPoint(key)
            contents.insert(MapEntry(key: key, value: value, createRevision: revision, modRevision: revision), at: position)
            return (true, 0, contents.count, position)
        }
        if inserted {
            keyCount.add(1, ordering: .relaxed)
            byteCount.add(key.count + value.count, ordering: .relaxed)
            if size > OrderedMap.maxShardEntries {
                // Keys written in ascending (or descending) order land at a shard's end: split
                // there, leaving a full shard behind, as B-trees do, instead of two half-empty
                // ones forever (an ascending load would otherwise fill shards to half).
                let at = position == size - 1 ? size - 1 : (position == 0 ? 1 : size / 2)
                split(shardIndex, at: at)
            }
        } else {
            byteCount.add(value.count - oldCount, ordering: .relaxed)
        }
    }

    /// Removes `key`, if present.
    func remove(_ key: Key) {
        let (shardIndex, shard) = owners.withLock { owned in
            let index = owned.directory.index(of: key)
            return (index, owned.shards[index])
        }
        let removed: (Int, Int)? = shard.contents.withLock { contents in
            guard let position = contents.find(key) else { return nil }
            let old = contents.remove(at: position)
            return (old.value.count, contents.count)
        }
        guard let (valueCount, remaining) = removed else { return }
        keyCount.subtract(1, ordering: .relaxed)
        byteCount.subtract(key.count + valueCount, ordering: .relaxed)
        if remaining < OrderedMap.maxShardEntries / 8 { mergeIfSmall(shardIndex) }
    }

    /// Splits shard `index` (it holds more than `maxShardEntries`) before position `at`.
    private func split(_ index: Int, at: Int) {
        republish { owned in
            let right = owned.shards[index].contents.withLock { $0.splitOff(from: at) }
            let shard = Shard(lowerBound: right.entries[0].key, right)
            owned.shards.insert(shard, at: index + 1)
            owned.directory.insert(shard, at: index + 1)
        }
    }

    /// Joins shard `index` with a neighbour when both together stay at half the maximum or less:
    /// deletes never leave a directory of near-empty shards.
    private func mergeIfSmall(_ index: Int) {
        republish { owned in
            guard owned.shards.count > 1 else { return }
            let left = index == owned.shards.count - 1 ? index - 1 : index
            let leftShard = owned.shards[left]
            let rightShard = owned.shards[left + 1]
            let rightContents = rightShard.contents.withLock { $0 }
            let merged = leftShard.contents.withLock { contents -> Bool in
                guard contents.count + rightContents.count <= OrderedMap.maxShardEntries / 2 else { return false }
                contents.append(rightContents)
                return true
            }
            guard merged else { return }
            // The right shard leaves the directory, and is freed. Readers reach shards only
            // through a stripe, and every stripe is held here, so none is inside it.
            owned.directory.remove(at: left + 1)
            owned.shards.remove(at: left + 1)
        }
    }

    /// Changes the directory with every stripe held (in order), then gives every stripe the
    /// new one: no reader is between a stripe and a shard while shards change.
    private func republish(_ change: (inout Owned) -> Void) {
        _ = holdingStripes(from: 0) {
            owners.withLock { owned in
                change(&owned)
                owned.checkInvariants()
                return owned.directory
            }
        }
    }

    /// Holds stripes `from`… (in order) while `body` runs, then stores its directory in each.
    /// (`Lock` lends its value only inside a closure, so the stripes' closures nest.)
    private func holdingStripes(from index: Int, _ body: () -> Directory) -> Directory {
        guard index < stripes.count else { return body() }
        return stripes[index].directory.withLock { held in
            let directory = holdingStripes(from: index + 1, body)
            held = directory
            return directory
        }
    }

    /// Replaces the whole content with `other`'s (a replica installing a snapshot). Single
    /// writer only; `other` must not be used afterwards (its shards are adopted).
    func replaceContents(with other: OrderedMap) {
        let replacement = other.owners.withLock { $0 }
        applying {
            _ = holdingStripes(from: 0) {
                owners.withLock { $0 = replacement }
                return replacement.directory
            }
            keyCount.store(other.count, ordering: .relaxed)
            byteCount.store(other.bytes, ordering: .relaxed)
            return other.revision
        }
    }

    /// A consistent copy of the whole map, if no write runs concurrently (the committer calls it
    /// between two rounds). O(shards): the arrays are shared until next written.
    func snapshot() -> MapSnapshot {
        let shards = owners.withLock { $0.shards }
        return MapSnapshot(shards: shards.map { shard in shard.contents.withLock { $0.entries } }, count: count, revision: revision)
    }

    // MARK: Loading (recovery, before any reader)

    /// Sets the revision recovery reached (the checkpoint's, then one per replayed record).
    func setRevision(_ revision: UInt64) {
        revisionCounter.store(revision, ordering: .releasing)
    }

    /// Builds a map from entries in strictly ascending key order (a version 3 checkpoint).
    struct Loader: ~Copyable {
        private var shards: [Shard] = []
        private var current: [MapEntry] = []
        private var count = 0
        private var bytes = 0
        private var last: Key?

        init() { current.reserveCapacity(OrderedMap.loadedShardEntries) }

        /// Whether `key` sorts after every key appended so far (the caller refuses the file if not).
        func follows(_ key: Key) -> Bool {
            guard let last else { return true }
            return last.compare(key) < 0
        }

        mutating func append(_ entry: MapEntry) {
            current.append(entry)
            last = entry.key
            count += 1
            bytes += entry.key.count + entry.value.count
            if current.count == OrderedMap.loadedShardEntries { flush() }
        }

        private mutating func flush() {
            guard !current.isEmpty else { return }
            let lowerBound = shards.isEmpty ? Key(bytes: UnsafeRawBufferPointer(start: nil, count: 0)) : current[0].key
            shards.append(Shard(lowerBound: lowerBound, current))
            current = []
            current.reserveCapacity(OrderedMap.loadedShardEntries)
        }

        consuming func finish(revision: UInt64) -> OrderedMap {
            flush()
            let map = OrderedMap()
            if !shards.isEmpty {
                let owned = Owned(shards)
                map.owners.withLock { $0 = owned }
                for stripe in map.stripes { stripe.directory.withLock { $0 = owned.directory } }
            }
            map.keyCount.store(count, ordering: .relaxed)
            map.byteCount.store(bytes, ordering: .relaxed)
            map.revisionCounter.store(revision, ordering: .releasing)
            return map
        }
    }
}

/// A frozen copy of the map, for writing a checkpoint or bootstrapping a replica: the shards in
/// key order, so a checkpoint lists keys ascending.
struct MapSnapshot: Sendable {
    let shards: [[MapEntry]]
    let count: Int
    let revision: UInt64
}

// MARK: Ranges

extension OrderedMap {
    /// What `range` found: entries in the order asked, whether more lie beyond the last one, and
    /// the store revision they were read at.
    struct RangeRead {
        var entries: [MapEntry]
        var more: Bool
        var revision: UInt64
    }

    /// Up to `limit` entries with `lower <= key < upper` (nil: unbounded), ascending, or
    /// descending if `reverse`, from one consistent state. `after` continues a listing: only keys
    /// beyond it in the listing's direction are returned.
    func range(lower: Key?, upper: Key?, after: Key?, reverse: Bool, limit: Int) -> RangeRead {
        consistentRead { directory, revision in
            var entries: [MapEntry] = []
            entries.reserveCapacity(min(limit, 1024) + 1)
            if reverse {
                OrderedMap.collectDescending(directory, lower: lower, upper: upper, before: after, limit: limit + 1, into: &entries)
            } else {
                OrderedMap.collectAscending(directory, lower: lower, upper: upper, after: after, limit: limit + 1, into: &entries)
            }
            let more = entries.count > limit
            if more { entries.removeLast() }
            return RangeRead(entries: entries, more: more, revision: revision)
        }
    }

    /// The number of keys with `lower <= key < upper`, and the revision it was counted at.
    func count(lower: Key?, upper: Key?) -> (count: Int, revision: UInt64) {
        consistentRead { directory, revision in
            if lower == nil && upper == nil { return (keyCount.load(ordering: .relaxed), revision) }
            let first = lower.map { directory.index(of: $0) } ?? 0
            let last = upper.map { directory.index(of: $0) } ?? directory.count - 1
            var total = 0
            for index in first...last {
                total += directory.withLockedContents(index) { contents in
                    let entries = contents.entries
                    let start = lower.map { OrderedMap.search(entries, $0).index } ?? 0
                    let end = upper.map { OrderedMap.search(entries, $0).index } ?? entries.count
                    return max(0, end - start)
                }
            }
            return (total, revision)
        }
    }

    /// Runs `body` on the directory so that every shard it reads is in one state: between two
    /// rounds (see the type's comment). `body` may run more than once; its last result counts.
    private func consistentRead<R>(_ body: (borrowing Directory, UInt64) -> R) -> R {
        for _ in 0..<OrderedMap.optimisticAttempts {
            let before = sequence.load(ordering: .acquiring)
            guard before & 1 == 0 else { continue }
            let result = stripe.directory.withLock { directory in
                body(directory, revisionCounter.load(ordering: .acquiring))
            }
            if sequence.load(ordering: .acquiring) == before { return result }
        }
        return applyLock.withLock { _ in
            stripe.directory.withLock { directory in body(directory, revisionCounter.load(ordering: .acquiring)) }
        }
    }

    private static func collectAscending(
        _ directory: borrowing Directory, lower: Key?, upper: Key?, after: Key?, limit: Int, into result: inout [MapEntry]
    ) {
        // The first key to consider, and whether it is itself excluded (a cursor).
        var from = lower
        var excludeFrom = false
        if let after, from.map({ after.compare($0) >= 0 }) ?? true {
            from = after
            excludeFrom = true
        }
        var shardIndex = from.map { directory.index(of: $0) } ?? 0
        while shardIndex < directory.count && result.count < limit {
            let finished = directory.withLockedContents(shardIndex) { contents -> Bool in
                let entries = contents.entries
                var index = 0
                if let from {
                    let (position, found) = OrderedMap.search(entries, from)
                    index = found && excludeFrom ? position + 1 : position
                }
                while index < entries.count && result.count < limit {
                    let entry = entries[index]
                    if let upper, entry.key.compare(upper) >= 0 { return true }
                    result.append(entry)
                    index += 1
                }
                return false
            }
            if finished { break }
            from = nil
            shardIndex += 1
        }
    }

    private static func collectDescending(
        _ directory: borrowing Directory, lower: Key?, upper: Key?, before: Key?, limit: Int, into result: inout [MapEntry]
    ) {
        // The exclusive upper end: the range's end, or the cursor if it comes first.
        var below = upper
        if let before, below.map({ before.compare($0) < 0 }) ?? true { below = before }
        var shardIndex = below.map { directory.index(of: $0) } ?? directory.count - 1
        while shardIndex >= 0 && result.count < limit {
            let finished = directory.withLockedContents(shardIndex) { contents -> Bool in
                let entries = contents.entries
                var index = below.map { OrderedMap.search(entries, $0).index } ?? entries.count
                while index > 0 && result.count < limit {
                    index -= 1
                    let entry = entries[index]
                    if let lower, entry.key.compare(lower) < 0 { return true }
                    result.append(entry)
                }
                return false
            }
            if finished { break }
            below = nil
            shardIndex -= 1
        }
    }
}
