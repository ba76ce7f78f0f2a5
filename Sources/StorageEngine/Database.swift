import Dispatch
import Platform
import Synchronization

/// A durable in-memory key/value store.
///
/// Every value lives in memory; every change is first appended to a write-ahead log and made
/// durable with fdatasync, and only then applied and acknowledged. Checkpoints compact the log.
/// Opening a directory recovers from any crash: see `Recovery` and `Checkpointer` for the steps.
///
/// Thread-safe. Reads never wait for disk and run in parallel with each other and with the writer.
/// Writes from any number of callers share one log write and one sync per round (`GroupCommitter`).
///
/// ```swift
/// let db = try Database.open(directory: "./data", create: true)
/// try await db.put("hello", Array("world".utf8))
/// let value = try db.get("hello")            // [UInt8]("world".utf8)
/// try await db.delete("hello")
/// _ = try await db.checkpoint()
/// db.close()
/// ```
public final class Database: Sendable {
    public let options: DatabaseOptions
    /// What opening found and did (interrupted switches, torn tails, records replayed…).
    public let recovery: RecoveryReport

    let map: OrderedMap
    let committer: GroupCommitter
    let checkpointer: Checkpointer
    let counters: EngineCounters
    let logStore: any LogStore
    let snapshotStore: any SnapshotStore
    private let isClosed = Atomic<Bool>(false)
    /// The interval trigger for background checkpoints. DispatchSource is thread-safe; Dispatch
    /// just predates Sendable annotations.
    nonisolated(unsafe) private let timer: any DispatchSourceTimer
    /// Runs once on close, after everything else (releases the directory lock).
    private let release: @Sendable () -> Void

    /// Opens the data directory at `directory`, creating it if `create` is true, and recovers.
    /// Fails with `.directoryLocked` if another open database holds it. `replicationSink`, if
    /// given, receives every committed batch before it is acknowledged.
    public static func open(
        directory: String, create: Bool = false, options: DatabaseOptions = DatabaseOptions(),
        replicationSink: (any ReplicationSink)? = nil
    ) throws(DatabaseError) -> Database {
        let store = try FileStore(directory: directory, create: create)
        do {
            return try Database(
                logStore: store, snapshotStore: store, options: options, sink: replicationSink, release: { store.close() })
        } catch {
            store.close()
            throw error
        }
    }

    /// Opens a database over any stores (for example `FaultInjectingStore` in tests) and recovers.
    /// `sink`, if given, receives every committed batch before it is acknowledged.
    public static func open(
        logStore: any LogStore, snapshotStore: any SnapshotStore, options: DatabaseOptions = DatabaseOptions(),
        replicationSink: (any ReplicationSink)? = nil
    ) throws(DatabaseError) -> Database {
        try Database(logStore: logStore, snapshotStore: snapshotStore, options: options, sink: replicationSink, release: {})
    }

    private init(
        logStore: any LogStore, snapshotStore: any SnapshotStore, options: DatabaseOptions,
        sink: (any ReplicationSink)?, release: @escaping @Sendable () -> Void
    ) throws(DatabaseError) {
        let log = options.log ?? { _, _ in }
        let recovered = try Recovery(logStore: logStore, snapshotStore: snapshotStore, options: options).run()
        log(.info, "recovered: \(recovered.report.summary)")
        if let torn = recovered.report.tornTail {
            log(.warning, "cut a torn record from \(torn.file) at offset \(torn.offset) (\(torn.droppedBytes) bytes, never acknowledged)")
        }
        if let damaged = recovered.report.damagedCheckpoint {
            log(.error, "damaged checkpoint \(damaged); recovered from the previous generation, which was still whole")
        }
        if let cut = recovered.report.truncatedCorruption {
            log(.error, "truncated corrupt log \(cut.file) at offset \(cut.offset): dropped \(cut.droppedBytes) bytes (\(cut.reason))")
        }
        let counters = EngineCounters()
        counters.retiredLogBytes.store(recovered.retiredLogBytes, ordering: .relaxed)
        let policy = options.checkpoints
        // The checkpointer holds the committer; the committer's after-round hook reaches the
        // checkpointer only weakly, so that the two never keep each other (and the map, and the
        // stores) alive after close.
        let checkpointerReference = Lock(WeakCheckpointer())
        let committer = GroupCommitter(
            map: recovered.map, logStore: logStore, segment: recovered.segment, counters: counters, sink: sink, log: log,
            afterRound: {
                checkpointerReference.withLock { $0.checkpointer }?.considerBackgroundCheckpoint()
            })
        let checkpointer = Checkpointer(
            generation: recovered.generation, committer: committer, logStore: logStore, snapshotStore: snapshotStore,
            counters: counters, policy: policy, log: log)
        checkpointerReference.withLock { $0.checkpointer = checkpointer }

        self.options = options
        self.recovery = recovered.report
        self.map = recovered.map
        self.committer = committer
        self.checkpointer = checkpointer
        self.counters = counters
        self.release = release
        self.logStore = logStore
        self.snapshotStore = snapshotStore
        // The interval trigger must fire even when no write arrives to run the check. (Always
        // armed: background checkpoints can be switched on later, when a backup is promoted.)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1))
        timer.setEventHandler { [weak checkpointer] in checkpointer?.considerBackgroundCheckpoint() }
        self.timer = timer
        committer.start()
        timer.resume()
    }

    deinit {
        if !isClosed.load(ordering: .acquiring) { close() }
    }

    /// Finishes every write already submitted and any running checkpoint, closes the log and
    /// releases the directory. Later calls fail with `.closed`. Blocks; idempotent.
    public func close() {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        timer.cancel()
        checkpointer.close()
        committer.close()
        release()
    }

    // MARK: Reads

    /// The value of `key`, or nil. Never waits for disk.
    public func get(_ key: Key) throws(DatabaseError) -> [UInt8]? {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        counters.gets.add(1, ordering: .relaxed)
        return map.withEntry(key) { entry in entry?.value.bytes }
    }

    /// Calls `body` with the value of `key` (nil if missing) without copying it: for servers that
    /// encode the value straight into a response. The bytes are valid only inside `body`.
    public func withValue<R>(for key: Key, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        guard !isClosed.load(ordering: .relaxed) else { throw DatabaseError.closed }
        counters.gets.add(1, ordering: .relaxed)
        guard let value = map.get(key) else { return try body(nil) }
        return try value.withUnsafeBytes { try body($0) }
    }

    /// The value of `key` (nil if missing) as a retained reference to the map's immutable bytes,
    /// without copying: for servers that send a large value over time. The reference keeps those
    /// bytes alive (and unchanged) even after the key is written again or deleted.
    /// Not counted in `gets`: the HTTP front calls it after `withValue` (which counted the read)
    /// found the value too large to encode at once.
    public func storedValue(for key: Key) throws(DatabaseError) -> StoredValue? {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        return map.get(key)
    }

    /// `storedValue(for:)` with the key's revisions, read from one state (the revisions are
    /// those of these bytes). Not counted in `gets`, for the same reason.
    public func storedEntry(for key: Key) throws(DatabaseError) -> StoredEntry? {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        return map.withEntry(key) { entry in
            entry.map { StoredEntry(key: $0.key, value: $0.value, createRevision: $0.createRevision, modRevision: $0.modRevision) }
        }
    }

    /// The value of `key` with its revisions, or nil. Never waits for disk.
    public func entry(_ key: Key) throws(DatabaseError) -> KeyEntry? {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        counters.gets.add(1, ordering: .relaxed)
        return map.entry(key).map {
            KeyEntry(key: $0.key, value: $0.value.bytes, createRevision: $0.createRevision, modRevision: $0.modRevision)
        }
    }

    /// `withValue`, with the key's mod revision (the HTTP front's ETag).
    public func withEntry<R>(for key: Key, _ body: (UnsafeRawBufferPointer?, _ modRevision: UInt64) throws -> R) throws -> R {
        guard !isClosed.load(ordering: .relaxed) else { throw DatabaseError.closed }
        counters.gets.add(1, ordering: .relaxed)
        guard let entry = map.entry(key) else { return try body(nil, 0) }
        return try entry.value.withUnsafeBytes { try body($0, entry.modRevision) }
    }

    /// The store's revision: that of the last committed write (0 before any). Each committed
    /// write (a put, a delete or a batch; on a backup, each of the primary's records) adds one.
    public var revision: UInt64 { map.revision }

    // MARK: Browsing

    /// A page of the keys in `range`, ascending (or descending with `options.reverse`), read from
    /// one consistent state. Continue with `options.after = page.cursor`: across pages, a key
    /// present and unchanged during the whole listing is returned exactly once.
    public func list(_ range: KeyRange, _ options: ListOptions = ListOptions()) throws(DatabaseError) -> ListPage {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        guard options.limit >= 1 else { throw .invalidLimit(options.limit) }
        counters.listings.add(1, ordering: .relaxed)
        guard !range.isEmpty else { return ListPage(entries: [], more: false, revision: map.revision) }
        let read = map.range(lower: range.start, upper: range.end, after: options.after, reverse: options.reverse, limit: options.limit)
        let entries = read.entries.map { entry in
            KeyEntry(
                key: entry.key, value: options.keysOnly ? nil : entry.value.bytes,
                createRevision: entry.createRevision, modRevision: entry.modRevision)
        }
        return ListPage(entries: entries, more: read.more, revision: read.revision)
    }

    /// `list` without copying values: each value is a retained reference to the map's immutable
    /// bytes (as `storedValue(for:)` returns), for servers that encode a page straight into a
    /// response and stop it at a size. `options.keysOnly` is ignored. (Without it, a page of 1000
    /// values of 16 MiB would be copied whole before a byte of it could be encoded.)
    public func listStored(
        _ range: KeyRange, _ options: ListOptions = ListOptions()
    ) throws(DatabaseError) -> StoredPage {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        guard options.limit >= 1 else { throw .invalidLimit(options.limit) }
        counters.listings.add(1, ordering: .relaxed)
        guard !range.isEmpty else { return StoredPage(entries: [], more: false, revision: map.revision) }
        let read = map.range(lower: range.start, upper: range.end, after: options.after, reverse: options.reverse, limit: options.limit)
        let entries = read.entries.map {
            StoredEntry(key: $0.key, value: $0.value, createRevision: $0.createRevision, modRevision: $0.modRevision)
        }
        return StoredPage(entries: entries, more: read.more, revision: read.revision)
    }

    /// The number of keys in `range`, and the store revision it was counted at.
    public func count(_ range: KeyRange) throws(DatabaseError) -> (count: Int, revision: UInt64) {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        counters.listings.add(1, ordering: .relaxed)
        guard !range.isEmpty else { return (0, map.revision) }
        return map.count(lower: range.start, upper: range.end)
    }

    // MARK: Writes

    /// Sets `key` to `value`; returns once the change is durable, with its revision.
    @discardableResult
    public func put(_ key: Key, _ value: [UInt8]) async throws(DatabaseError) -> UInt64 {
        var batch = WriteBatch()
        batch.put(key, value)
        return try await write(batch)
    }

    /// Removes `key` (a missing key is not an error); returns once the change is durable, with
    /// its revision.
    @discardableResult
    public func delete(_ key: Key) async throws(DatabaseError) -> UInt64 {
        var batch = WriteBatch()
        batch.delete(key)
        return try await write(batch)
    }

    /// Applies every change in `batch` atomically, if its conditions hold; returns once it is
    /// durable, with the revision it committed at (a batch that writes nothing: the store's
    /// revision). A failed condition throws `.conditionFailed` and writes nothing.
    @discardableResult
    public func write(_ batch: WriteBatch) async throws(DatabaseError) -> UInt64 {
        try batch.validate(options.limits)
        let result: Result<UInt64, DatabaseError> = await withUnsafeContinuation { continuation in
            committer.enqueue(batch) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The non-blocking form of `write`, for event loops: validates `batch` (throwing at once if it
    /// breaks a limit), queues it, and returns. `completion` is called exactly once, on the
    /// committer's thread, when the batch is durable and visible or has failed; it must not block.
    ///
    /// With `mayCommitOnCallingThread`, a batch that finds no other write in flight (and recent
    /// syncs under 1 ms) is committed on the calling thread instead: it writes and syncs (blocking for one fdatasync, and for the
    /// backup's acknowledgement under replication), and `completion` runs before `submit`
    /// returns, on the calling thread. A lone writer then pays no thread hand-off in either
    /// direction (measured over HTTP with one connection: docs/PERFORMANCE.md). Writes that
    /// arrive meanwhile are committed together by the committer thread as usual.
    public func submit(
        _ batch: WriteBatch, mayCommitOnCallingThread: Bool = false,
        completion: @escaping @Sendable (Result<UInt64, DatabaseError>) -> Void
    ) throws(DatabaseError) {
        try batch.validate(options.limits)
        if mayCommitOnCallingThread, committer.syncsAreFast, committer.commitInline(batch, completion: completion) { return }
        committer.enqueue(batch, completion: completion)
    }

    /// One write for `submit(_:mayCommitOnCallingThread:)`: a batch and its completion.
    public struct Submission: Sendable {
        public let batch: WriteBatch
        /// Called with the revision the batch committed at, or why it failed.
        public let completion: @Sendable (Result<UInt64, DatabaseError>) -> Void

        public init(_ batch: WriteBatch, completion: @escaping @Sendable (Result<UInt64, DatabaseError>) -> Void) {
            self.batch = batch
            self.completion = completion
        }
    }

    /// Submits several writes at once, in order, as `submit` would one after another: an event
    /// loop hands over the writes it read in one iteration. A batch that breaks a limit is
    /// completed at once with the error (`validate` tells beforehand); the rest are queued
    /// together, under one lock and with at most one wake-up of the committer.
    ///
    /// With `mayCommitOnCallingThread`, when no other write is in flight and recent syncs were
    /// fast (under 1 ms), the writes are committed as one round on the calling thread instead,
    /// and every completion runs before this returns. That is the shape of a single-threaded
    /// server's loop (Redis's: read every ready request, write and sync them once, answer them
    /// all), with no thread hand-off in either direction (measured over HTTP: docs/PERFORMANCE.md).
    public func submit(_ writes: [Submission], mayCommitOnCallingThread: Bool) {
        var valid: [GroupCommitter.PendingWrite] = []
        valid.reserveCapacity(writes.count)
        for write in writes {
            do throws(DatabaseError) {
                try write.batch.validate(options.limits)
                valid.append(GroupCommitter.PendingWrite(batch: write.batch, completion: write.completion))
            } catch {
                write.completion(.failure(error))
            }
        }
        guard !valid.isEmpty else { return }
        if mayCommitOnCallingThread, committer.syncsAreFast, committer.commitInline(valid) { return }
        committer.enqueue(valid)
    }

    /// Throws the error `submit` would for `batch` (a key, value or batch over the limits).
    public func validate(_ batch: WriteBatch) throws(DatabaseError) {
        try batch.validate(options.limits)
    }

    // MARK: Checkpoints

    /// Writes a checkpoint and switches to it; returns once it is durable. Writers keep going while
    /// it runs. Checkpoints run one at a time: a call waits for a running one first.
    public func checkpoint() async throws(DatabaseError) -> CheckpointResult {
        guard !isClosed.load(ordering: .relaxed) else { throw .closed }
        let result: Result<CheckpointResult, DatabaseError> = await withUnsafeContinuation { continuation in
            checkpointer.checkpoint { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The non-blocking form of `checkpoint`; `completion` runs on the checkpoint thread.
    public func checkpoint(completion: @escaping @Sendable (Result<CheckpointResult, DatabaseError>) -> Void) {
        guard !isClosed.load(ordering: .relaxed) else { return completion(.failure(.closed)) }
        checkpointer.checkpoint(completion: completion)
    }

    // MARK: Observing

    public var stats: DatabaseStats {
        let position = committer.logPosition
        let lastCheckpoint = counters.lastCheckpointNanoseconds.load(ordering: .relaxed)
        return DatabaseStats(
            keys: map.count,
            bytes: map.bytes,
            walBytes: committer.walBytes,
            generation: checkpointer.generation,
            logPosition: position,
            puts: counters.puts.load(ordering: .relaxed),
            deletes: counters.deletes.load(ordering: .relaxed),
            writes: counters.writes.load(ordering: .relaxed),
            batches: counters.batches.load(ordering: .relaxed),
            syncs: counters.syncs.load(ordering: .relaxed),
            gets: counters.gets.load(ordering: .relaxed),
            listings: counters.listings.load(ordering: .relaxed),
            checkpoints: counters.checkpoints.load(ordering: .relaxed),
            lastCheckpointDuration: lastCheckpoint < 0 ? nil : .nanoseconds(lastCheckpoint),
            failedCheckpoints: counters.failedCheckpoints.load(ordering: .relaxed),
            writesDisabledReason: committer.failure.map(\.description),
            commitSizes: counters.commitSizes.snapshot,
            syncLatency: counters.syncLatency.snapshot)
    }
}

/// The committer's way to reach the checkpointer without owning it (see `Database.init`).
private struct WeakCheckpointer {
    weak var checkpointer: Checkpointer?
}
