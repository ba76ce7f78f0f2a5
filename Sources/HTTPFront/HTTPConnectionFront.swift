import Reactor
import StorageEngine
import WireProtocol

/// HTTP as a `ConnectionFront`: what the reactor's `ConnectionServer` asks of the protocol.
/// Shared by every loop; each loop gets its own batch of writes.
///
/// The hand-off of writes, per loop iteration: every write request read in the iteration is
/// appended to the loop's `IterationBatch`; at the iteration's end the batch goes to the engine
/// as one group. If the committer is idle, the engine commits it right there, on the loop's
/// thread, as one round (one write, one fdatasync), and the answers are queued before the
/// hand-off returns: Redis's loop, with no thread hand-off. Answering may release requests that
/// waited behind those writes (`HTTPConnection`'s ordering rule), and their writes form the next
/// group.
final class HTTPConnectionFront: ConnectionFront, @unchecked Sendable {
    let configuration: HTTPServerConfiguration
    let metrics: ServerMetrics
    let router: Router
    /// Each loop's batch of writes, by loop index; each is touched only on its loop's thread
    /// (hence `@unchecked Sendable`), after `attach` made it there.
    private let writeBatches: [LoopWriteBatch]

    private final class LoopWriteBatch {
        var batch: IterationBatch<Database.Submission>?
    }

    init(configuration: HTTPServerConfiguration, metrics: ServerMetrics, router: Router, loopCount: Int) {
        self.configuration = configuration
        self.metrics = metrics
        self.router = router
        writeBatches = (0..<loopCount).map { _ in LoopWriteBatch() }
    }

    func attach(to loop: EventLoop) {
        let database = router.database
        let batch = IterationBatch<Database.Submission>(loop: loop) { group in
            database.submit(group, mayCommitOnCallingThread: true)
        }
        writeBatches[loop.index].batch = batch
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
