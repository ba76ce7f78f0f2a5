import Dispatch
import Platform
import WireProtocol

/// Writes checkpoints with the version switch, one at a time, without stopping writers.
///
/// The version switch from generation N (the `version` file) to G, in order:
/// 1. Between two group-commit rounds, the committer creates logfile.G (durably), appends every
///    later record there, and snapshots the map (O(shards): copy-on-write). This is the only pause
///    writers see, and its length does not grow with the data. G is one more than the segment
///    being written, which is N unless an earlier checkpoint failed after its step 1.
/// 2. Write checkpoint.G from the snapshot: checkpoint.G.tmp, fsync, rename, fsync the directory.
///    Writers keep committing to logfile.G meanwhile.
/// 3. Write newVersion = G (newVersion.tmp, fsync, rename, fsync the directory): the commit point.
/// 4. Delete checkpoint.N, every segment below G, and `version`.
/// 5. Rename newVersion to version and fsync the directory.
///
/// A crash before step 3 leaves version = N and segments N…G: recovery replays them all, so the
/// records already in logfile.G survive. A crash after it leaves newVersion, and recovery finishes
/// steps 4 and 5. This is the Go version's protocol, except that its step 2 created logfile.G
/// empty just before the commit point, after stopping every writer for the whole checkpoint.
final class Checkpointer: Sendable {
    private let committer: GroupCommitter
    private let snapshotStore: any SnapshotStore
    private let logStore: any LogStore
    private let counters: EngineCounters
    private let log: @Sendable (LogLevel, String) -> Void
    /// Checkpoints run here, one at a time, off the committer and off Swift's cooperative pool.
    private let queue = DispatchQueue(label: "small-db checkpoints")

    private struct State {
        /// The generation in `version`.
        var generation: UInt64
        var lastCheckpoint: ContinuousClock.Instant
        /// Committed updates at the start of the last checkpoint (for the updates trigger).
        var updatesAtLastCheckpoint = 0
        /// A background checkpoint is queued or running.
        var backgroundPending = false
        /// After a failed background checkpoint, none is tried before this instant, and the wait
        /// doubles with each further failure (1 s up to 60 s). Without it a persistent failure
        /// (a full disk) would retry after every commit round, each try starting a new segment.
        var retryNotBefore: ContinuousClock.Instant?
        var retryDelay: Duration = .seconds(1)
        /// Set by `close`: no checkpoint starts afterwards.
        var isClosed = false
        /// The background triggers; switched on and off at run time (a backup's are off until it
        /// is promoted).
        var policy: DatabaseOptions.CheckpointPolicy
    }
    private let state: Lock<State>

    init(
        generation: UInt64, committer: GroupCommitter, logStore: any LogStore, snapshotStore: any SnapshotStore,
        counters: EngineCounters, policy: DatabaseOptions.CheckpointPolicy,
        log: @escaping @Sendable (LogLevel, String) -> Void
    ) {
        self.committer = committer
        self.logStore = logStore
        self.snapshotStore = snapshotStore
        self.counters = counters
        self.log = log
        self.state = Lock(State(generation: generation, lastCheckpoint: .now, policy: policy))
    }

    var generation: UInt64 { state.withLock { $0.generation } }

    func setBackgroundCheckpoints(enabled: Bool) {
        state.withLock { $0.policy.enabled = enabled }
    }

    /// Runs a checkpoint now (after any already queued) and calls `completion` when it is durable.
    /// A replica mirroring its primary passes the generation the primary started (`expecting`)
    /// and learns through `rotated` when step 1 is done, so that it can go on applying records.
    func checkpoint(
        expecting: UInt64? = nil, rotated: (@Sendable (Result<UInt64, DatabaseError>) -> Void)? = nil,
        completion: @escaping @Sendable (Result<CheckpointResult, DatabaseError>) -> Void
    ) {
        let accepted: Bool = state.withLock { state in
            guard !state.isClosed else { return false }
            queue.async { completion(self.run(expecting: expecting, rotated: rotated)) }  // under the lock: see `close`
            return true
        }
        if !accepted {
            rotated?(.failure(.closed))
            completion(.failure(.closed))
        }
    }

    /// Runs `work` on the checkpoint queue, so that no checkpoint runs at the same time, then
    /// makes `generation` the active generation (a replica that installed a snapshot).
    func runExclusive(
        _ work: @escaping @Sendable () -> Result<UInt64, DatabaseError>,
        completion: @escaping @Sendable (Result<Void, DatabaseError>) -> Void
    ) {
        let accepted: Bool = state.withLock { state in
            guard !state.isClosed else { return false }
            queue.async {
                let result = work()
                if case .success(let generation) = result {
                    self.state.withLock { state in
                        state.generation = generation
                        state.lastCheckpoint = .now
                        state.updatesAtLastCheckpoint = self.counters.updates
                    }
                }
                completion(result.map { _ in () })
            }
            return true
        }
        if !accepted { completion(.failure(.closed)) }
    }

    /// Stops new checkpoints and waits for those already queued, which still run (the committer
    /// is still open). Checkpoints are queued under the same lock that sets the flag, so each one
    /// is either queued before the flag, and so before the final `sync`, or refused.
    func close() {
        state.withLock { $0.isClosed = true }
        queue.sync {}
    }

    /// Called after each commit round and every second: starts a background checkpoint if a
    /// trigger has fired.
    func considerBackgroundCheckpoint() {
        let updates = counters.updates
        let walBytes = committer.walBytes
        state.withLock { state in
            let policy = state.policy
            guard policy.enabled, !state.backgroundPending, !state.isClosed else { return }
            if let retryNotBefore = state.retryNotBefore, ContinuousClock.now < retryNotBefore { return }
            var reason: String?
            if walBytes >= policy.logBytes {
                reason = "log reached \(walBytes) bytes"
            } else if policy.updates > 0 && updates - state.updatesAtLastCheckpoint >= policy.updates {
                reason = "\(updates - state.updatesAtLastCheckpoint) updates since the last checkpoint"
            } else if updates > state.updatesAtLastCheckpoint
                && ContinuousClock.now - state.lastCheckpoint >= policy.interval
            {
                reason = "\(policy.interval) since the last checkpoint"
            }
            if let reason {
                state.backgroundPending = true
                queue.async { self.runInBackground(reason) }  // under the lock: see `close`
            }
        }
    }

    private func runInBackground(_ reason: String) {
        let result = run()
        let retryDelay: Duration? = state.withLock { state in
            state.backgroundPending = false
            guard case .failure = result else {
                state.retryNotBefore = nil
                state.retryDelay = .seconds(1)
                return nil
            }
            let delay = state.retryDelay
            state.retryNotBefore = .now + delay
            state.retryDelay = min(delay * 2, .seconds(60))
            return delay
        }
        if case .failure(let error) = result, let retryDelay {
            log(.error, "background checkpoint (\(reason)) failed: \(error); next try in \(retryDelay) at the earliest")
        }
    }

    /// Steps 1–5 above. Runs on `queue`.
    private func run(
        expecting: UInt64? = nil, rotated onRotated: (@Sendable (Result<UInt64, DatabaseError>) -> Void)? = nil
    ) -> Result<CheckpointResult, DatabaseError> {
        let started = ContinuousClock.now
        // Step 1 (on the committer thread, between two rounds).
        let rotated = Lock<Result<GroupCommitter.Rotation, DatabaseError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        committer.enqueue(.rotate(expecting: expecting) { result in
            rotated.withLock { $0 = result }
            done.signal()
        })
        done.wait()
        let rotation: GroupCommitter.Rotation
        switch rotated.withLock({ $0 })! {
        case .success(let value):
            rotation = value
            onRotated?(.success(value.generation))
        case .failure(let error):
            counters.failedCheckpoints.add(1, ordering: .relaxed)
            onRotated?(.failure(error))
            return .failure(error)
        }
        let target = rotation.generation
        state.withLock { $0.updatesAtLastCheckpoint = rotation.updatesBefore }
        do throws(DatabaseError) {
            // Step 2.
            try snapshotStore.writeCheckpoint(target) { (write) throws(DatabaseError) in
                var writer = CheckpointWriter(
                    generation: target, entryCount: UInt64(rotation.snapshot.count), revision: rotation.snapshot.revision)
                for shard in rotation.snapshot.shards {  // in key order, as version 3 requires
                    for entry in shard {
                        let revisions = CheckpointRevisions(create: entry.createRevision, mod: entry.modRevision)
                        entry.key.withUnsafeBytes { key in
                            entry.value.withUnsafeBytes { value in writer.append(key: key, value: value, revisions: revisions) }
                        }
                        if writer.bufferedCount >= 1 << 20 { try write(writer.takeBuffered()) }
                    }
                }
                try write(writer.finish())
            }
            // Step 3: the commit point.
            try snapshotStore.writeNewVersion(target)
            // Step 4. (Every older checkpoint, not just N: a switch that failed after its step 2
            // may have left one behind.)
            for old in try snapshotStore.checkpointGenerations() where old < target {
                try snapshotStore.removeCheckpoint(old)
            }
            for old in try logStore.logGenerations() where old < target {
                try logStore.removeLog(old)
            }
            // Every retired segment was below `target` (checkpoints run one at a time).
            counters.retiredLogBytes.store(0, ordering: .relaxed)
            try snapshotStore.removeVersion()
            // Step 5.
            try snapshotStore.promoteNewVersion()
        } catch {
            counters.failedCheckpoints.add(1, ordering: .relaxed)
            return .failure(error)
        }
        let duration = ContinuousClock.now - started
        state.withLock { state in
            state.generation = target
            state.lastCheckpoint = .now
        }
        counters.checkpoints.add(1, ordering: .relaxed)
        counters.lastCheckpointNanoseconds.store(duration.nanoseconds, ordering: .relaxed)
        log(.info, "checkpoint \(target) written: \(rotation.snapshot.count) keys in \(duration)")
        return .success(CheckpointResult(generation: target, keys: rotation.snapshot.count, duration: duration))
    }
}

/// What a completed checkpoint wrote.
public struct CheckpointResult: Sendable, Equatable {
    /// The new active generation: checkpoint.`generation` and logfile.`generation` onward.
    public var generation: UInt64
    public var keys: Int
    public var duration: Duration
}

