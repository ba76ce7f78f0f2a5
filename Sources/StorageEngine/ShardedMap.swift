import Platform
import Synchronization

/// The in-memory state: keys to values, split into shards, each a dictionary behind its own lock.
///
/// - Readers lock one shard for one lookup, so they run in parallel with each other and with the
///   committer, which locks one shard at a time while it applies a batch.
/// - `snapshot()` copies every shard's dictionary (a reference-count increment each: O(shards)).
///   Swift's copy-on-write means a shard is physically copied only when it is next written, and
///   then only that shard: this is what lets a checkpoint start without stopping writers, with a
///   pause that does not grow with the data (docs/ARCHITECTURE.md, decision 3).
///
/// Only the group committer (and recovery, before the committer starts) calls the mutating methods.
final class ShardedMap: Sendable {
    /// Enough shards that copying one (after a snapshot) costs microseconds even at millions of keys.
    static let shardCount = 1024

    private let shards: [Shard]
    /// Keys and key+value bytes held, kept by the single writer, read by anyone.
    private let keyCount = Atomic<Int>(0)
    private let byteCount = Atomic<Int>(0)

    init(expectedKeys: Int = 0) {
        let perShard = expectedKeys / ShardedMap.shardCount
        shards = (0..<ShardedMap.shardCount).map { _ in Shard(capacity: perShard) }
    }

    var count: Int { keyCount.load(ordering: .relaxed) }
    var bytes: Int { byteCount.load(ordering: .relaxed) }

    @inline(__always)
    private func shardIndex(_ key: Key) -> Int {
        Int(truncatingIfNeeded: key.shardHash >> 32) & (ShardedMap.shardCount - 1)
    }

    func get(_ key: Key) -> StoredValue? {
        shards[shardIndex(key)].dictionary.withLock { $0[key] }
    }

    /// Sets `key` to `value`. Single writer only.
    func set(_ key: Key, _ value: StoredValue) {
        let old = shards[shardIndex(key)].dictionary.withLock { $0.updateValue(value, forKey: key) }
        if let old {
            byteCount.add(value.count - old.count, ordering: .relaxed)
        } else {
            keyCount.add(1, ordering: .relaxed)
            byteCount.add(key.count + value.count, ordering: .relaxed)
        }
    }

    /// Removes `key`. Single writer only.
    func remove(_ key: Key) {
        let old = shards[shardIndex(key)].dictionary.withLock { $0.removeValue(forKey: key) }
        if let old {
            keyCount.subtract(1, ordering: .relaxed)
            byteCount.subtract(key.count + old.count, ordering: .relaxed)
        }
    }

    /// Replaces every shard's content with `other`'s (a replica installing a snapshot). Single
    /// writer only. Shard by shard: a reader during the swap may see some shards old, some new.
    func replaceContents(with other: ShardedMap) {
        let replacement = other.snapshot()
        for (shard, dictionary) in zip(shards, replacement.shards) {
            shard.dictionary.withLock { $0 = dictionary }
        }
        keyCount.store(other.count, ordering: .relaxed)
        byteCount.store(other.bytes, ordering: .relaxed)
    }

    /// A consistent copy of the whole map, if no write runs concurrently (the committer calls it
    /// between two batches). O(shards): the dictionaries are shared until next written.
    func snapshot() -> MapSnapshot {
        MapSnapshot(shards: shards.map { shard in shard.dictionary.withLock { $0 } }, count: count)
    }
}

/// One shard: a dictionary and its lock.
private final class Shard: Sendable {
    let dictionary: Lock<[Key: StoredValue]>

    init(capacity: Int) {
        dictionary = Lock([Key: StoredValue](minimumCapacity: capacity))
    }
}

/// A frozen copy of the map, for writing a checkpoint or bootstrapping a replica.
struct MapSnapshot: Sendable {
    let shards: [[Key: StoredValue]]
    let count: Int
}
