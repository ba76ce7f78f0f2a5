import Platform
import Reactor
import StorageEngine
import WireProtocol

/// HTTP as a `ConnectionFront`: what the reactor's `ConnectionServer` asks of the protocol.
/// Shared by every loop; each loop gets its own batch of writes.
///
/// The hand-off of writes, per loop iteration: every write request read in the iteration is
/// appended to the loop's `IterationBatch`; at the iteration's end the batch goes to the engine
/// as one group. With several loops, through `Database.submit(_:mayCommitOnCallingThread:)`: the
/// loop commits the round inline when the committer is idle (while it syncs, the other loops
/// run), else queues it. With one loop (a one-core machine, `-event-loops 1`, a pinned server),
/// through the loop's `CommitPipeline`: on a fast disk the loop commits the round inline (one
/// write, one fdatasync, answers queued before the hand-off returns: Redis's loop), and on a slow
/// one the loop prepares the round and the pipeline's sync thread makes it durable while the
/// loop reads and parses the next requests, which form the next round, so that the only loop
/// does not sit idle through long syncs; the answers come back to the loop as one task. Answering may release requests that waited
/// behind those writes (`HTTPConnection`'s ordering rule), and their writes join the next group.
final class HTTPConnectionFront: ConnectionFront, @unchecked Sendable {
    let configuration: HTTPServerConfiguration
    let metrics: ServerMetrics
    let router: Router
    /// Each loop's batch of writes, by loop index; each is touched only on its loop's thread
    /// (hence `@unchecked Sendable`), after `attach` made it there.
    private let writeBatches: [LoopWriteBatch]

    private final class LoopWriteBatch {
        var batch: IterationBatch<Database.Submission>?
        var pipeline: CommitPipeline?
    }

    init(configuration: HTTPServerConfiguration, metrics: ServerMetrics, router: Router, loopCount: Int) {
        self.configuration = configuration
        self.metrics = metrics
        self.router = router
        writeBatches = (0..<loopCount).map { _ in LoopWriteBatch() }
    }

    func attach(to loop: EventLoop) {
        let database = router.database
        let slot = writeBatches[loop.index]
        // One loop only: with several, another loop runs while one waits out an inline sync, so
        // the syncs overlap with work already; pipelines there measured 9–10% slower (their
        // rounds meet in the committer's queue and pay extra hand-offs: docs/PERFORMANCE.md).
        if writeBatches.count == 1 {
            do throws(ThreadStartError) {
                slot.pipeline = try database.makeCommitPipeline { task in loop.execute(task) }
            } catch {
                // No thread for the pipeline: the loop commits as before, inline or through the
                // committer thread, which is correct, only slower.
                configuration.log?(.error, "event loop \(loop.index): no sync thread (\(error)); committing on the loop")
            }
        }
        let pipeline = slot.pipeline
        slot.batch = IterationBatch<Database.Submission>(loop: loop) { group in
            if let pipeline { pipeline.submit(group) } else { database.submit(group, mayCommitOnCallingThread: true) }
        }
    }

    /// After the loops have stopped: every pipeline finishes its round and what is pending, and
    /// its sync thread ends.
    func stopPipelines() {
        for slot in writeBatches { slot.pipeline?.stop() }
    }

    func makeHandler(for connection: Connection) -> any ConnectionHandler {
        let batch = writeBatches[connection.loop.index].batch!
        return HTTPConnection(connection: connection, front: self, writes: batch)
    }

    func rejection(limit: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        HTTPResponseEncoder.encode(
            .json(status: 503, error: "too many connections (limit \(limit))"),
            headOnly: false, closeConnection: true, to: &bytes)
        return bytes
    }
}
