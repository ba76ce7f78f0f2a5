import Dispatch
import Platform
import Synchronization
import WireProtocol

/// The single writer: it turns queued write requests into durable log records, then into state.
///
/// The group commit protocol, one round per loop iteration:
/// 1. Gather briefly for the writers the last round answered (see `run`), then take everything
///    queued (writes and control requests) in one step. Writers that arrive from here on wait
///    for the next round: no fixed cap on a round's size.
/// 2. Check each write's conditions against the state left by every earlier write (the map, and
///    the round's earlier writes on top of it); a write whose condition fails is answered with
///    `conditionFailed` and writes nothing. Number each remaining write with the next revision
///    (a replicated write: one per record it holds) and encode its record into one buffer.
/// 3. Append the buffer to the current segment with one write, then make it durable with one
///    fdatasync. (Between the two, the replication sink may start shipping the batch, so that
///    the replica's sync overlaps ours: `ReplicationSink.willSync`.)
/// 4. Hand the records to the replication sink, if any (the output rule: it returns when the
///    batch may be acknowledged, or says it must not be).
/// 5. Apply every change to the in-memory map, in queue order, each at its revision, as one step
///    for readers of ranges (`OrderedMap.applying`). Nothing is visible before it is durable.
/// 6. Complete every request (success).
/// 7. Run control requests (segment rotation for a checkpoint) here, between two rounds, when no
///    write is in flight.
///
/// If step 3 fails, the log's tail is unknown: the round's requests fail, and so does every later
/// write (`DatabaseError.writesDisabled`) until the database is reopened and recovery decides what
/// the tail holds. Nothing unsynced is ever acknowledged.
final class GroupCommitter: Sendable {
    /// Called with the revision the write committed at (an empty batch: the store's revision
    /// then), or why it failed.
    typealias Completion = @Sendable (Result<UInt64, DatabaseError>) -> Void

    struct PendingWrite: Sendable {
        let batch: WriteBatch
        let completion: Completion
        /// On a replica: `batch`'s records exactly as the primary wrote them, and where they must
        /// land. They are written as they are (not re-encoded), so the replica's log is a byte
        /// for byte copy; if the log's end is elsewhere, the write fails and nothing is written.
        var replicated: ReplicatedRecords? = nil
    }

    struct ReplicatedRecords: Sendable {
        let bytes: [UInt8]
        let start: LogPosition
    }

    /// What a rotation hands back: the new segment's first position and the state at that point.
    struct Rotation: Sendable {
        let generation: UInt64
        let snapshot: MapSnapshot
        let updatesBefore: Int
    }

    enum ControlRequest: Sendable {
        /// Start logfile.(current+1) and snapshot the map, between two rounds (version switch step 1).
        /// With `expecting`, fail unless current+1 is that generation (a replica mirroring its
        /// primary's rotation).
        case rotate(expecting: UInt64?, @Sendable (Result<Rotation, DatabaseError>) -> Void)
        /// Replace the whole log with an empty logfile.`generation`, between two rounds: close the
        /// current segment, run `prepare` (which rewrites the directory and the map), then append
        /// to the new segment. A failure of `prepare` disables writes: the directory is then in
        /// an unknown state.
        case replaceLog(
            generation: UInt64, prepare: @Sendable () throws(DatabaseError) -> Void,
            completion: @Sendable (Result<Void, DatabaseError>) -> Void)
    }

    private struct Queue: ~Copyable {
        var writes: [PendingWrite] = []
        var controls: [ControlRequest] = []
        var committerIsWaiting = false
        /// While the committer gathers in a timed wait: the queue length at which to wake it.
        var gatherTarget: Int?
        var isClosing = false
        var failure: DatabaseError?
        /// A round runs, on the committer thread or inline on a caller's (`commitInline`).
        /// Rounds never overlap: each applies its changes before the next one starts.
        var roundInProgress = false
        /// The committer thread waits for an inline round to end.
        var committerWaitsForRound = false
        /// The round in progress runs inline, on a caller's thread.
        var inlineRoundRunning = false
        /// A write was queued while an inline round ran: writers are not alone, so no more
        /// inline rounds until the committer thread next finds nothing to do. (Otherwise two
        /// event loops could take turns committing one write per sync, never batching.)
        var inlineContended = false
    }

    private let queue = Lock(Queue())
    /// The poll after a round of one or two writes: long enough for a lone client's next request
    /// to make the round trip (an HTTP client on loopback: 50–100 µs), so that it finds the
    /// committer awake. With one writer there is a core to spare for it. After larger rounds the
    /// committer does not poll at all: polling takes the queue's lock in a loop, against the
    /// event loops that enqueue, on a machine whose cores they need (measured over HTTP at 16 and
    /// 64 connections: 30 µs of polling cost 9–10% of the throughput, docs/PERFORMANCE.md).
    static let loneWriterSpinWindow: Duration = .microseconds(150)

    /// The gather window: twice the recent sync time, within 50 µs – 1 ms. Waiting about one
    /// sync's worth at most doubles a write's latency, and lets a round take in every writer that
    /// is coming back (measured over HTTP, 64 connections: 56k/s with a fixed 100 µs window,
    /// 65k with 250 µs, 70k with 500 µs).
    static func gatherWindow(recentSync: Duration) -> Duration {
        min(max(recentSync * 2, .microseconds(50)), .milliseconds(1))
    }

    private enum GatherPhase { case spin, wait, take }

    /// Signalled when work arrives while the committer waits, and when closing.
    private let wakeup = DispatchSemaphore(value: 0)
    /// Signalled once when the committer thread has finished.
    private let finished = DispatchSemaphore(value: 0)

    private let map: OrderedMap
    private let logStore: any LogStore
    private let counters: EngineCounters
    private let sink: (any ReplicationSink)?
    /// Called after each round (the background checkpoint triggers).
    private let afterRound: @Sendable () -> Void
    private let log: @Sendable (LogLevel, String) -> Void

    /// The committer thread's own state. Touched only by that thread once it runs (and by `init`
    /// before it starts), so it needs no lock; `Lock` is used only to satisfy Sendable cheaply.
    private struct CommitterState: ~Copyable {
        var segment: any LogSegmentWriter
        var buffer: [UInt8] = []
        /// When the round's step 3 began (its append), for the sync latency.
        var syncStarted = ContinuousClock.now
    }
    private let state: Lock<CommitterState>
    /// Where the next record goes; read by stats from any thread.
    private let position: Lock<LogPosition>

    init(
        map: OrderedMap, logStore: any LogStore, segment: any LogSegmentWriter, counters: EngineCounters,
        sink: (any ReplicationSink)?, log: @escaping @Sendable (LogLevel, String) -> Void,
        afterRound: @escaping @Sendable () -> Void
    ) {
        self.map = map
        self.logStore = logStore
        self.counters = counters
        self.sink = sink
        self.log = log
        self.afterRound = afterRound
        self.position = Lock(LogPosition(generation: segment.generation, offset: segment.size))
        self.state = Lock(CommitterState(segment: segment))
    }

    func start() {
        startDetachedThread { [self] in
            run()
            finished.signal()
        }
    }

    var logPosition: LogPosition { position.withLock { $0 } }

    /// Bytes in every live segment: the current one up to its last record, and the retired ones
    /// that the next checkpoint will delete.
    var walBytes: Int { logPosition.offset + counters.retiredLogBytes.load(ordering: .relaxed) }

    /// The reason writes are refused, if a write or sync failed.
    var failure: DatabaseError? { queue.withLock { $0.failure } }

    /// Queues `batch`; `completion` runs on the committer thread once the batch is durable and
    /// applied, or has failed. Must be cheap and must not block.
    func enqueue(_ batch: WriteBatch, replicated: ReplicatedRecords? = nil, completion: @escaping Completion) {
        enqueue([PendingWrite(batch: batch, completion: completion, replicated: replicated)])
    }

    /// Queues several writes in order, under one lock and with at most one wake-up; each
    /// completion runs as `enqueue`'s does.
    func enqueue(_ group: [PendingWrite]) {
        guard !group.isEmpty else { return }
        let refusal: DatabaseError? = queue.withLock { queue in
            if queue.isClosing { return .closed }
            if let failure = queue.failure { return failure }
            queue.writes.append(contentsOf: group)
            if queue.inlineRoundRunning { queue.inlineContended = true }
            if queue.committerIsWaiting {
                queue.committerIsWaiting = false
                wakeup.signal()
            } else if let target = queue.gatherTarget, queue.writes.count >= target {
                queue.gatherTarget = nil
                wakeup.signal()
            }
            return nil
        }
        if let refusal { for write in group { write.completion(.failure(refusal)) } }
    }

    /// The committer thread is asleep with nothing queued and no round runs: the state in which
    /// `commitInline` may run a round (tests wait for it).
    var isIdle: Bool {
        queue.withLock { $0.committerIsWaiting && !$0.roundInProgress && $0.writes.isEmpty && $0.controls.isEmpty }
    }

    /// Whether recent syncs were short enough for a caller to wait for one: an event loop that
    /// commits on its own thread answers nothing else during the sync, which is fine for the
    /// fdatasync of a fast disk (about 0.1 ms here) but not for a slow or overloaded one.
    var syncsAreFast: Bool {
        recentSyncNanoseconds.load(ordering: .relaxed) <= fastSyncLimitNanoseconds.load(ordering: .relaxed)
    }

    /// The longest moving average of step 3 at which `syncsAreFast` holds: 1 ms, ten of this
    /// machine's fdatasyncs. Tests of the inline path raise it: on a starved or sanitized run
    /// even an in-memory store's step 3 can average more than 1 ms, and "fast" would never hold.
    let fastSyncLimitNanoseconds = Atomic<Int>(1_000_000)

    /// A moving average of step 3's duration (write and fdatasync), over every round.
    private let recentSyncNanoseconds = Atomic<Int>(100_000)

    /// Runs a round for `batch` alone on the calling thread, if the committer thread is idle
    /// (asleep with nothing queued) and no round runs: the caller writes, syncs, applies and
    /// calls `completion` before this returns, with no thread hand-off (a lone writer's case).
    /// Returns false, having done nothing, otherwise; then the caller enqueues as usual.
    /// Writes that arrive meanwhile queue for the committer thread, which starts their round
    /// once this one has ended.
    func commitInline(
        _ batch: WriteBatch, replicated: ReplicatedRecords? = nil, completion: @escaping Completion
    ) -> Bool {
        commitInline([PendingWrite(batch: batch, completion: completion, replicated: replicated)])
    }

    /// `commitInline` for several writes: one round, in order (an event loop's writes of one
    /// iteration). Returns false, having done nothing, under the same conditions.
    func commitInline(_ group: [PendingWrite]) -> Bool {
        guard claimInlineRound() else { return false }
        commit(group)
        releaseInlineRound()
        return true
    }

    /// Claims the next round for the caller (`commitInline`, `CommitPipeline`): true if the
    /// committer thread is idle (asleep with nothing queued), no round runs, writers were not
    /// contended, and nothing is closing or failed. The caller then runs `prepare`,
    /// `syncAndReplicate` and `finish` (on any threads, in that order) and then
    /// `releaseInlineRound`. Writes queued meanwhile wait for the committer thread, which starts
    /// their round once this one is released.
    func claimInlineRound() -> Bool {
        queue.withLock { queue -> Bool in
            guard queue.committerIsWaiting, !queue.roundInProgress, !queue.inlineContended, queue.writes.isEmpty,
                queue.controls.isEmpty, !queue.isClosing, queue.failure == nil
            else { return false }
            queue.roundInProgress = true
            queue.inlineRoundRunning = true
            return true
        }
    }

    /// Ends a round claimed by `claimInlineRound`, once its changes are applied.
    func releaseInlineRound() {
        queue.withLock { queue in
            assert(queue.roundInProgress && queue.inlineRoundRunning, "released a round that was not claimed")
            queue.roundInProgress = false
            queue.inlineRoundRunning = false
            if queue.committerWaitsForRound {
                queue.committerWaitsForRound = false
                wakeup.signal()
            }
        }
    }

    func enqueue(_ control: ControlRequest) {
        let refused: Bool = queue.withLock { queue in
            if queue.isClosing { return true }
            queue.controls.append(control)
            if queue.committerIsWaiting {
                queue.committerIsWaiting = false
                wakeup.signal()
            }
            return false
        }
        guard refused else { return }
        switch control {
        case .rotate(_, let completion): completion(.failure(.closed))
        case .replaceLog(_, _, let completion): completion(.failure(.closed))
        }
    }

    /// Stops accepting work, lets the committer finish everything already queued, and waits for
    /// its thread to end. Then closes the segment.
    func close() {
        queue.withLock { queue in
            queue.isClosing = true
            if queue.committerIsWaiting {
                queue.committerIsWaiting = false
                wakeup.signal()
            }
        }
        finished.wait()
        state.withLock { $0.segment.close() }
    }

    // MARK: The committer thread

    private func run() {
        var writes: [PendingWrite] = []
        var controls: [ControlRequest] = []
        var lastRound = ContinuousClock.now
        var expected = 1
        while true {
            // Step 1: take everything queued, or wait for work.
            //
            // Right after a round, gather first: the writers just answered usually send their
            // next write soon. Waiting for them, until the queue holds as many writes as were
            // queued at the end of the round plus those it answered, and for at most
            // `gatherWindow(recentSync:)`, keeps concurrent writers in one round instead of two
            // cohorts that take turns, each paying a whole sync. After a round of one or two
            // writes, the first part of the window polls (`loneWriterSpinWindow`; larger rounds
            // do not poll), which spares a lone writer a thread wake-up on every write (an
            // event loop's lone writer commits inline instead: `commitInline`); the rest sleeps until
            // an enqueue reaches the target, so the CPU stays free for the writers (an HTTP
            // server's event loops share the cores with this thread).
            var isClosing = false
            var took = false
            var inlineRoundRunning = false
            let spinUntil = lastRound + (expected <= 2 ? GroupCommitter.loneWriterSpinWindow : .zero)
            let window = GroupCommitter.gatherWindow(recentSync: .nanoseconds(recentSyncNanoseconds.load(ordering: .relaxed)))
            let gatherUntil = lastRound + window
            while !took {
                let now = ContinuousClock.now
                let phase: GatherPhase = now < spinUntil ? .spin : (now < gatherUntil ? .wait : .take)
                isClosing = queue.withLock { queue in
                    queue.gatherTarget = nil
                    inlineRoundRunning = queue.roundInProgress
                    if inlineRoundRunning {
                        queue.committerWaitsForRound = true
                        return queue.isClosing
                    }
                    let enough = queue.writes.count >= expected || !queue.controls.isEmpty || queue.isClosing
                    if !enough && phase == .wait {
                        queue.gatherTarget = expected
                        return queue.isClosing
                    }
                    guard enough || phase == .take else { return queue.isClosing }
                    swap(&writes, &queue.writes)
                    swap(&controls, &queue.controls)
                    took = true
                    if writes.isEmpty && controls.isEmpty {
                        if !queue.isClosing { queue.committerIsWaiting = true }
                        queue.inlineContended = false  // idle: the next writer may well be alone
                    } else {
                        queue.roundInProgress = true
                    }
                    return queue.isClosing
                }
                if inlineRoundRunning {
                    wakeup.wait()  // signalled when the inline round ends
                    continue
                }
                if !took && phase == .wait {
                    _ = wakeup.wait(timeout: .now() + (gatherUntil - now).dispatchInterval)
                }
            }
            if writes.isEmpty && controls.isEmpty {
                if isClosing { return }
                wakeup.wait()
                lastRound = .now - window  // woken by new work: take it at once
                continue
            }
            let queuedBeforeAnswering = writes.isEmpty ? 0 : commit(writes)
            for control in controls { perform(control) }
            queue.withLock { $0.roundInProgress = false }
            lastRound = ContinuousClock.now
            expected = max(1, writes.count + queuedBeforeAnswering)
            writes.removeAll(keepingCapacity: true)
            controls.removeAll(keepingCapacity: true)
        }
    }

    /// Steps 2–6 for one round, on this thread. Returns how many writes were queued just before
    /// the round's writers were answered (so that step 1 can tell the answered writers' next
    /// writes from those that were already waiting).
    @discardableResult
    private func commit(_ writes: [PendingWrite]) -> Int {
        if let failure = self.failure {
            for write in writes { write.completion(.failure(failure)) }
            return 0
        }
        let round = prepare(writes)
        let outcome = syncAndReplicate(round)
        let answers = finish(round, outcome)
        let queuedBeforeAnswering = queue.withLock { $0.writes.count }
        for answer in answers { answer.completion(answer.result) }
        afterRound()
        return queuedBeforeAnswering
    }

    /// A round between its steps: what step 2 decided and how far step 3 got. Rounds never
    /// overlap (`Queue.roundInProgress`), so the committer state it refers to (the segment, the
    /// encoding buffer) is untouched between its steps, whichever threads run them.
    struct PreparedRound: Sendable {
        let writes: [PendingWrite]
        /// Writes that write nothing: replicated records whose position does not match the log's
        /// end (see `PendingWrite`), and writes whose condition failed.
        let refused: [Int: DatabaseError]
        /// Each write's first revision; the round ends at `lastRevision`.
        let firstRevisions: [UInt64]
        let lastRevision: UInt64
        /// Where the round's records start in the log.
        let start: LogPosition
        /// Step 3's write: done (and handed to the sink's `willSync`), nothing to write (a
        /// round of empty batches and refusals: no sync either), or failed.
        let written: Result<Bool, DatabaseError>
    }

    /// One writer's answer, for whichever thread runs it (`finish`).
    struct Answer: Sendable {
        let completion: Completion
        let result: Result<UInt64, DatabaseError>
    }

    /// Step 2 (check conditions, number, encode) and step 3's write (one append to the segment,
    /// then the sink's `willSync`). The caller has claimed the round (`roundInProgress`).
    func prepare(_ writes: [PendingWrite]) -> PreparedRound {
        var refused: [Int: DatabaseError] = [:]
        var firstRevisions = [UInt64](repeating: 0, count: writes.count)
        var lastRevision = map.revision
        let (start, written): (LogPosition, Result<Bool, DatabaseError>) = state.withLock { state in
            state.buffer.removeAll(keepingCapacity: true)
            let lastConditional = writes.lastIndex { !$0.batch.conditions.isEmpty } ?? -1
            var round = RoundOverlay()
            // By index, not `for write in writes`: that copied each write (its batch's arrays and
            // its completion retained and released) in each of the round's three passes.
            for index in writes.indices {
                if let replicated = writes[index].replicated {
                    let here = LogPosition(generation: state.segment.generation, offset: state.segment.size + state.buffer.count)
                    guard replicated.start == here else {
                        refused[index] = .replicaMismatch("records for \(replicated.start) arrived at the log's end \(here)")
                        continue
                    }
                    state.buffer.append(contentsOf: replicated.bytes)
                    firstRevisions[index] = lastRevision + 1
                    lastRevision += UInt64(writes[index].batch.recordEnds?.count ?? 1)
                } else {
                    if !writes[index].batch.conditions.isEmpty {
                        let failures = round.failedConditions(of: writes[index].batch, in: map)
                        guard failures.isEmpty else {
                            refused[index] = .conditionFailed(failures)
                            continue
                        }
                    }
                    guard !writes[index].batch.isEmpty else {
                        firstRevisions[index] = lastRevision  // writes nothing: the revision stays
                        continue
                    }
                    GroupCommitter.encode(writes[index].batch, into: &state.buffer)
                    lastRevision += 1
                    firstRevisions[index] = lastRevision
                }
                if index < lastConditional { round.record(writes[index].batch, at: firstRevisions[index]) }
            }
            let start = LogPosition(generation: state.segment.generation, offset: state.segment.size)
            guard !state.buffer.isEmpty else { return (start, .success(false)) }
            do throws(DatabaseError) {
                let segment = state.segment
                state.syncStarted = ContinuousClock.now
                try state.buffer.withBytes { (raw) throws(DatabaseError) in try segment.append(raw) }
                if let sink { state.buffer.withUnsafeBytes { sink.willSync($0, at: start) } }
                return (start, .success(true))
            } catch {
                return (start, .failure(error))
            }
        }
        return PreparedRound(
            writes: writes, refused: refused, firstRevisions: firstRevisions, lastRevision: lastRevision,
            start: start, written: written)
    }

    /// Step 3's fdatasync and step 4 (the output rule: the sink's verdict). Blocks for the sync
    /// and, with a sink, for the backup's ack; any thread may run it (a loop's sync thread:
    /// `CommitPipeline`).
    func syncAndReplicate(_ round: PreparedRound) -> Result<(end: Int, synced: Bool, verdict: ReplicationVerdict), DatabaseError> {
        state.withLock { state in
            switch round.written {
            case .failure(let error): return .failure(error)
            case .success(false): return .success((round.start.offset, false, .acknowledge))
            case .success(true): break
            }
            do throws(DatabaseError) {
                try state.segment.sync()
                let duration = ContinuousClock.now - state.syncStarted
                counters.syncLatency.record(duration)
                // Rounds never overlap, so this read-modify-write has no concurrent writer.
                let nanoseconds = duration.nanoseconds
                let average = recentSyncNanoseconds.load(ordering: .relaxed)
                recentSyncNanoseconds.store(average - average / 8 + nanoseconds / 8, ordering: .relaxed)
            } catch {
                return .failure(error)
            }
            var verdict = ReplicationVerdict.acknowledge
            if let sink { verdict = state.buffer.withUnsafeBytes { sink.replicate($0, at: round.start) } }
            if state.buffer.capacity > 16 << 20 { state.buffer = [] }  // do not pin a huge buffer
            return .success((state.segment.size, true, verdict))
        }
    }

    /// Step 5 (apply, in order, each change at its revision) and the answers of step 6, which
    /// the caller runs. On a failed write or sync, writes are disabled and every writer fails.
    func finish(
        _ round: PreparedRound, _ outcome: Result<(end: Int, synced: Bool, verdict: ReplicationVerdict), DatabaseError>
    ) -> [Answer] {
        let writes = round.writes
        let refused = round.refused
        switch outcome {
        case .failure(let error):
            let failure = DatabaseError.writesDisabled(reason: error.description)
            queue.withLock { $0.failure = failure }
            log(.error, "write to the log failed, writes are disabled until reopen: \(error)")
            return writes.indices.map { Answer(completion: writes[$0].completion, result: .failure(refused[$0] ?? error)) }
        case .success(let (end, synced, verdict)):
            var puts = 0
            var deletes = 0
            var batches = 0
            map.applying {
                for index in writes.indices where refused.isEmpty || refused[index] == nil {
                    let (batchPuts, batchDeletes) = apply(writes[index].batch, from: round.firstRevisions[index])
                    puts += batchPuts
                    deletes += batchDeletes
                    if batchPuts + batchDeletes > 1 { batches += 1 }
                }
                return round.lastRevision
            }
            position.withLock { $0.offset = end }
            counters.puts.add(puts, ordering: .relaxed)
            counters.deletes.add(deletes, ordering: .relaxed)
            counters.batches.add(batches, ordering: .relaxed)
            counters.writes.add(writes.count - refused.count, ordering: .relaxed)
            if synced {
                counters.syncs.add(1, ordering: .relaxed)
                counters.commitSizes.record(Double(writes.count))
            }
            var answers: [Answer] = []
            answers.reserveCapacity(writes.count)
            for index in writes.indices {
                if !refused.isEmpty, let error = refused[index] {
                    answers.append(Answer(completion: writes[index].completion, result: .failure(error)))
                    continue
                }
                switch verdict {
                case .acknowledge:
                    // A replicated write of several records: its last record's revision.
                    let records = UInt64(writes[index].batch.recordEnds?.count ?? 1)
                    let first = round.firstRevisions[index]
                    let committed = writes[index].replicated != nil ? first + records - 1 : first
                    answers.append(Answer(completion: writes[index].completion, result: .success(committed)))
                case .refuse(let reason):
                    answers.append(Answer(completion: writes[index].completion, result: .failure(.notReplicated(reason: reason))))
                }
            }
            return answers
        }
    }

    /// Step 5 for one write: applies `batch`'s mutations to the map in order, each at its
    /// revision (from `first` on, one more at each of a backup's record boundaries), and returns
    /// how many were puts and deletes.
    private func apply(_ batch: borrowing WriteBatch, from first: UInt64) -> (puts: Int, deletes: Int) {
        var puts = 0
        var deletes = 0
        var revision = first
        var recordEnds = (batch.recordEnds ?? []).makeIterator()
        var recordEnd = recordEnds.next() ?? Int.max
        for (position, mutation) in batch.mutations.enumerated() {
            while position >= recordEnd {
                revision += 1
                recordEnd = recordEnds.next() ?? Int.max
            }
            switch mutation {
            case .set(let key, let value):
                map.set(key, value, revision: revision)
                puts += 1
            case .delete(let key):
                map.remove(key)
                deletes += 1
            }
        }
        return (puts, deletes)
    }

    static func encode(_ batch: WriteBatch, into buffer: inout [UInt8]) {
        let start = WALEncoder.beginRecord(in: &buffer, entryCount: batch.count)
        for mutation in batch.mutations {
            switch mutation {
            case .set(let key, let value):
                key.withUnsafeBytes { key in
                    value.withUnsafeBytes { value in WALEncoder.appendEntry(.set, key: key, value: value, to: &buffer) }
                }
            case .delete(let key):
                key.withUnsafeBytes { key in
                    WALEncoder.appendEntry(.delete, key: key, value: UnsafeRawBufferPointer(start: nil, count: 0), to: &buffer)
                }
            }
        }
        WALEncoder.finishRecord(startingAt: start, in: &buffer)
    }

    // MARK: Step 7: control requests

    private func perform(_ control: ControlRequest) {
        switch control {
        case .rotate(let expecting, let completion):
            completion(rotate(expecting: expecting))
        case .replaceLog(let generation, let prepare, let completion):
            completion(replaceLog(with: generation, prepare: prepare))
        }
    }

    /// Version switch step 1: a new segment and a snapshot, at the same point between two rounds.
    private func rotate(expecting: UInt64?) -> Result<Rotation, DatabaseError> {
        if let failure = self.failure { return .failure(failure) }
        return state.withLock { state in
            let next = state.segment.generation + 1
            if let expecting, expecting != next {
                return .failure(.replicaMismatch("the primary started logfile.\(expecting) but this log is at logfile.\(next - 1)"))
            }
            let segment: any LogSegmentWriter
            do throws(DatabaseError) {
                segment = try logStore.createLog(next)
            } catch {
                // Nothing was written to it: remove what the failed creation may have left, so
                // the next checkpoint can create it again.
                try? logStore.removeLog(next)
                return .failure(error)
            }
            counters.retiredLogBytes.add(state.segment.size, ordering: .relaxed)
            state.segment.close()
            state.segment = segment
            position.withLock { $0 = LogPosition(generation: next, offset: 0) }
            sink?.didStartSegment(next)
            let rotation = Rotation(generation: next, snapshot: map.snapshot(), updatesBefore: counters.updates)
            return .success(rotation)
        }
    }

    /// The `replaceLog` control request (a replica installing a snapshot).
    private func replaceLog(
        with generation: UInt64, prepare: @Sendable () throws(DatabaseError) -> Void
    ) -> Result<Void, DatabaseError> {
        if let failure = self.failure { return .failure(failure) }
        return state.withLock { state in
            state.segment.close()
            do throws(DatabaseError) {
                try prepare()
                state.segment = try logStore.openLogForAppend(generation)
            } catch {
                let failure = DatabaseError.writesDisabled(reason: "installing a snapshot failed: \(error)")
                queue.withLock { $0.failure = failure }
                log(.error, "installing a snapshot failed, writes are disabled until reopen: \(error)")
                return .failure(error)
            }
            counters.retiredLogBytes.store(0, ordering: .relaxed)
            position.withLock { $0 = LogPosition(generation: generation, offset: state.segment.size) }
            return .success(())
        }
    }
}
