import Dispatch
public import Platform
import Synchronization

/// Commits an owner thread's writes (an event loop's) without making it wait out slow syncs: the
/// owner prepares each round itself (conditions, revisions, the log write), and while syncs are
/// slow a sync thread of the pipeline's own makes it durable, applies it and hands the answers
/// back, while the owner goes on reading and parsing the next requests. What arrives meanwhile
/// is the next round.
///
/// Why only while syncs are slow (measured over HTTP at 64 connections, one pinned loop,
/// docs/PERFORMANCE.md): on a slow disk the overlap doubled throughput, since the loop would
/// otherwise sit idle through most of every round; on a fast one (about 0.1 ms per sync) the
/// hand-offs and the twice as many, half as large rounds cost more CPU per write (+14%) than the
/// overlap saves, and the inline round is faster.
///
/// A round, step by step (the group commit's steps: `GroupCommitter`):
/// 1. The owner calls `submit` with the writes it read in one iteration. If a round of this
///    pipeline is in flight, they wait in `pending` (they are the next round, in order).
/// 2. Otherwise the owner claims the round (`GroupCommitter.claimInlineRound`: the committer
///    thread is idle and nobody else commits). If it cannot, the writes go to the committer
///    thread's queue, as `Database.submit` would queue them.
/// 3. The owner runs step 2 and step 3's write (`prepare`).
/// 4. On a fast disk (recent syncs under 1 ms: `GroupCommitter.syncsAreFast`) the owner syncs,
///    applies and answers the round right there, before `submit` returns: the loop's inline
///    commit, with no thread hand-off. On a slow one the round goes to the sync thread, which
///    syncs (and waits for the backup's ack, with replication), applies it (`finish`), releases
///    the round, and hands the answers to the owner (`deliver`), in one task.
/// 5. The sync thread then takes `pending` (whatever the owner read during the sync) and starts
///    it as the next round itself (steps 2–4 on its thread), until nothing is pending.
///
/// What must stay true:
/// - Nothing is answered before it is durable (and replicated, by the output rule): the answers
///   are made by `finish`, after `syncAndReplicate`.
/// - Rounds never overlap: each is claimed from the committer, and its successor is prepared
///   only after it is applied, so conditions always see every earlier write.
/// - One owner's writes commit in the order it submitted them: `pending` is taken whole, and a
///   round that cannot be claimed is queued to the committer before anything submitted later.
public final class CommitPipeline: Sendable {
    private let committer: GroupCommitter
    private let limits: DatabaseOptions.Limits
    private let deliver: @Sendable (@escaping @Sendable () -> Void) -> Void
    private struct State {
        var inFlight = false
        var pending: [GroupCommitter.PendingWrite] = []
        var job: GroupCommitter.PreparedRound?
        var stopping = false
    }
    private let state = Lock(State())
    private let work = DispatchSemaphore(value: 0)
    private let thread = Lock<JoinableThread?>(nil)

    init(
        committer: GroupCommitter, limits: DatabaseOptions.Limits,
        deliver: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) throws(ThreadStartError) {
        self.committer = committer
        self.limits = limits
        self.deliver = deliver
        let syncThread = try JoinableThread { [self] in runSyncThread() }
        thread.withLock { $0 = syncThread }
    }

    /// Submits writes in order, as `Database.submit(_:mayCommitOnCallingThread:)` does: a write
    /// over the limits is completed at once with the error. Call it from the owner's thread
    /// only; completions run there (through `deliver`, or before this returns).
    public func submit(_ writes: [Database.Submission]) {
        var valid: [GroupCommitter.PendingWrite] = []
        valid.reserveCapacity(writes.count)
        for write in writes {
            do throws(DatabaseError) {
                try write.batch.validate(limits)
                valid.append(GroupCommitter.PendingWrite(batch: write.batch, completion: write.completion))
            } catch {
                write.completion(.failure(error))
            }
        }
        guard !valid.isEmpty else { return }
        let waits = state.withLock { state in
            guard state.inFlight else { return false }
            state.pending.append(contentsOf: valid)
            return true
        }
        if !waits { start(valid, onOwner: true) }
    }

    /// Steps 2–4 for `writes`, on the owner's thread or the sync thread.
    private func start(_ writes: [GroupCommitter.PendingWrite], onOwner: Bool) {
        guard committer.claimInlineRound() else {
            committer.enqueue(writes)
            if !onOwner { takePendingAndContinue() }
            return
        }
        let round = committer.prepare(writes)
        if onOwner && committer.syncsAreFast {
            let answers = committer.finish(round, committer.syncAndReplicate(round))
            committer.releaseInlineRound()
            for answer in answers { answer.completion(answer.result) }
            return
        }
        state.withLock { state in
            assert(state.job == nil, "a second round was prepared while one waits for the sync thread")
            state.inFlight = true
            state.job = round
        }
        work.signal()
    }

    private func runSyncThread() {
        while true {
            work.wait()
            let (job, stopping) = state.withLock { state in
                defer { state.job = nil }
                return (state.job, state.stopping)
            }
            guard let job else {
                if stopping { return }
                continue
            }
            let answers = committer.finish(job, committer.syncAndReplicate(job))
            committer.releaseInlineRound()
            deliver { for answer in answers { answer.completion(answer.result) } }
            takePendingAndContinue()
        }
    }

    /// Step 5, on the sync thread: the writes the owner submitted during the round are the next.
    private func takePendingAndContinue() {
        let next = state.withLock { state -> [GroupCommitter.PendingWrite] in
            let next = state.pending
            state.pending.removeAll()
            if next.isEmpty { state.inFlight = false }
            return next
        }
        if !next.isEmpty { start(next, onOwner: false) }
    }

    /// Lets the sync thread finish the round in flight and whatever is pending, then ends it.
    /// Blocks until it has. Writes submitted afterwards are refused by the committer or queued
    /// to it. Call it before letting the pipeline go (before `Database.close`, as `HTTPServer`'s
    /// shutdown does): until then its thread waits for work and keeps the pipeline alive.
    public func stop() {
        state.withLock { $0.stopping = true }
        work.signal()
        thread.withLock { $0 }?.join()
    }
}

extension Database {
    /// A pipeline for one owner thread's writes (an event loop's): see `CommitPipeline`.
    /// `deliver` runs a task on the owner's thread (the loop's `execute`). Throws when its sync
    /// thread cannot be made.
    public func makeCommitPipeline(
        deliver: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) throws(ThreadStartError) -> CommitPipeline {
        try CommitPipeline(committer: committer, limits: options.limits, deliver: deliver)
    }
}
