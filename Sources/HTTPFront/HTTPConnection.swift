import Reactor
import StorageEngine
import WireProtocol

/// HTTP's side of one client connection (a `ConnectionHandler`): the request decoder, the
/// response slots and their order. The reactor's `Connection` owns the socket, the output,
/// back-pressure, fairness, timeouts and the close (`ConnectionPolicy` holds the limits, set
/// from `HTTPServerConfiguration`).
///
/// Requests are decoded as bytes arrive and answered strictly in order (pipelining): each request
/// takes the next response slot; a handler may fill its slot at once (a GET) or later, from the
/// engine's committer thread (a PUT, once durable); filled slots at the head of the queue move to
/// the connection's output in order.
///
/// Requests on one connection also take effect in order: writes (PUT, DELETE, POST) go to the
/// engine as they arrive, which commits them in that order; a read waits until every earlier write
/// of its connection is durable and visible, and everything after a waiting request waits too. So
/// a pipelined PUT then GET of a key returns the new value, never the old one.
///
/// What must stay true:
/// - Everything here runs on the owning loop's thread. `Responder.send`, the one entry point from
///   other threads, hops onto the loop with `EventLoop.execute`. (Hence `@unchecked Sendable`:
///   the reference crosses threads only inside such a task.)
/// - Memory per connection is bounded: the decoder's limits bound the input; the connection
///   decodes nothing while `maxPendingMessages` requests are unanswered or unwritten or
///   `maxBufferedOutput` bytes of answers wait (its `answerBytesWaiting` counts `heldOutputBytes`
///   here: answers in slots and the unsent rest of a stream), and a read held back behind a write
///   is not answered while they do. A streamed answer (a GET of a value over
///   `KeyValueHandlers.streamedValueThreshold`, `StreamedValueAnswer`) counts with all its unsent
///   bytes, though only one chunk of it (64 KiB of base64) is ever built: the rest is a reference
///   to the stored value. So a client that never reads makes us build at most 4 MiB of answers
///   plus one more small answer (a GET of a 64 KiB value under the largest key, fully escaped, is
///   about 112 KB) plus one chunk, and reference values whose answers total under 4 MiB plus one
///   (which are the map's own bytes unless the keys were written since), for at most
///   `writeTimeout` once the kernel takes no more of them.
/// - Streamed answers keep their place: one is taken from the slots only once everything before
///   it is in the output, and the slots after it only once its last piece is (`takeReadySlots`).
/// - `readyBytesInSlots` is the sum the slots hold (`checkSlotInvariants`, debug builds).
/// - After a malformed request, the error response is the last thing sent, then the connection closes.
/// - No access to a stored property overlaps another; release builds skip the run-time check of
///   that (`@exclusivity(unchecked)`), debug builds and the tests keep it (`Connection`).
final class HTTPConnection: ConnectionHandler, @unchecked Sendable {
    let connection: Connection
    var loop: EventLoop { connection.loop }
    private let front: HTTPConnectionFront
    private let writes: IterationBatch<Database.Submission>
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var decoder: HTTPRequestDecoder

    /// Responses not yet moved to the output, in request order. `firstSlot` is the slot number
    /// of `slots[0]`.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var slots: [ResponseSlot] = []
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var firstSlot = 0
    /// Bytes of answers in `.ready` and `.streaming` slots (behind an unanswered request).
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var readyBytesInSlots = 0
    /// The streamed answer being sent: its next piece goes into the output once the output is
    /// drained; no later slot is taken until it is finished.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var stream: StreamedValueAnswer?
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private(set) var isClosed = false

    enum ResponseSlot {
        case pending(isWrite: Bool)
        case ready([UInt8], closeAfter: Bool)
        case streaming(StreamedValueAnswer, closeAfter: Bool)
    }

    /// Writes handed to the engine and not yet answered.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var writesInFlight = 0
    /// Requests held back to keep the connection's order (see the type's comment).
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var waiting: [(request: HTTPRequest, slot: Int, isWrite: Bool)] = []
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var releasingWaiting = false

    init(connection: Connection, front: HTTPConnectionFront, writes: IterationBatch<Database.Submission>) {
        self.connection = connection
        self.front = front
        self.writes = writes
        self.decoder = HTTPRequestDecoder(limits: front.configuration.limits)
    }

    var router: Router { front.router }

    /// Answer bytes built and held in memory: the output's buffer and the answers waiting in
    /// slots (tests: that a streamed answer is never built whole).
    var builtAnswerBytes: Int {
        slots.reduce(connection.outputCapacity) { sum, slot in
            if case .ready(let bytes, _) = slot { sum + bytes.count } else { sum }
        }
    }

    /// Hands a write to the engine at the end of this loop iteration, with every other write the
    /// loop reads in it (`HTTPConnectionFront.attach`). On the loop's thread.
    func submitAtIterationEnd(_ write: Database.Submission) {
        loop.assertOnLoop()
        writes.append(write)
    }

    // MARK: ConnectionHandler: input

    var holdsPartialMessage: Bool { !decoder.isIdle }
    var mayHoldMessages: Bool { !decoder.isIdle }
    var pendingMessages: Int { slots.count }
    var heldOutputBytes: Int { readyBytesInSlots + (stream?.remainingCount ?? 0) }
    var hasUnfinishedAnswers: Bool { !slots.isEmpty || stream != nil }

    func consume(_ bytes: UnsafeRawBufferPointer) { decoder.feed(bytes) }

    func handleNextMessage() -> MessageStep {
        let event: HTTPDecodeEvent?
        do {
            event = try decoder.next()
        } catch {
            front.metrics.loops[loop.index].record(route: .other, method: "OTHER", status: error.status, duration: .zero)
            let response = HTTPResponse.json(status: error.status, error: error.description)
            appendReady(encode(response, headOnly: false, close: true), closeAfter: true)
            connection.stopReading()
            return .stop
        }
        guard let event else { return .needsBytes }
        switch event {
        case .continueExpected:
            // An interim response; it takes a slot so that it follows every earlier answer.
            appendReady(HTTPResponseEncoder.continueResponse, closeAfter: false)
            return .progress
        case .request(let request):
            let slot = firstSlot + slots.count
            let isWrite = request.method == "PUT" || request.method == "DELETE" || request.method == "POST"
            slots.append(.pending(isWrite: isWrite))
            if !request.keepAlive { connection.stopReading() }
            if waiting.isEmpty && (isWrite || writesInFlight == 0) {
                dispatch(request, slot: slot, isWrite: isWrite)
            } else {
                waiting.append((request, slot, isWrite))
            }
            return isClosed ? .stop : .message
        }
    }

    func partialMessageTimedOut(after waited: Duration) -> [UInt8]? {
        front.metrics.loops[loop.index].record(route: .other, method: "OTHER", status: 408, duration: waited)
        let response = HTTPResponse.json(status: 408, error: "the request was not received in time (request timeout)")
        return encode(response, headOnly: false, close: true)
    }

    private func appendReady(_ bytes: [UInt8], closeAfter: Bool) {
        slots.append(.ready(bytes, closeAfter: closeAfter))
        readyBytesInSlots += bytes.count
    }

    // MARK: Responses

    private func dispatch(_ request: HTTPRequest, slot: Int, isWrite: Bool) {
        if isWrite { writesInFlight += 1 }
        router.route(request, Responder(connection: self, slot: slot, request: request, started: .now))
    }

    /// Dispatches held-back requests, in order, as far as the ordering rule allows, and a read
    /// only while the connection has room for answers (the rest go when writing makes room).
    private func releaseWaiting() {
        guard !releasingWaiting else { return }  // a dispatch that answers at once re-enters here
        releasingWaiting = true
        defer { releasingWaiting = false }
        while let next = waiting.first, next.isWrite || (writesInFlight == 0 && connection.hasRoomForAnswers) {
            waiting.removeFirst()
            dispatch(next.request, slot: next.slot, isWrite: next.isWrite)
        }
    }

    /// Fills `slot` (on the loop's thread) and writes whatever is ready at the head of the queue.
    func complete(slot: Int, bytes: [UInt8], closeAfter: Bool) {
        loop.assertOnLoop()
        guard !isClosed, slot >= firstSlot, slot - firstSlot < slots.count else { return }
        if case .pending(isWrite: true) = slots[slot - firstSlot] { writesInFlight -= 1 }
        slots[slot - firstSlot] = .ready(bytes, closeAfter: closeAfter)
        readyBytesInSlots += bytes.count
        releaseWaiting()
        writeReadySlots()
    }

    /// Fills `slot` with a streamed answer (on the loop's thread); see `complete(slot:bytes:…)`.
    func complete(slot: Int, stream answer: StreamedValueAnswer, closeAfter: Bool) {
        loop.assertOnLoop()
        guard !isClosed, slot >= firstSlot, slot - firstSlot < slots.count else { return }
        if case .pending(isWrite: true) = slots[slot - firstSlot] { writesInFlight -= 1 }
        slots[slot - firstSlot] = .streaming(answer, closeAfter: closeAfter)
        readyBytesInSlots += answer.remainingCount
        releaseWaiting()
        writeReadySlots()
    }

    func encode(_ response: HTTPResponse, headOnly: Bool, close: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + (headOnly ? 0 : response.body.count))
        HTTPResponseEncoder.encode(response, headOnly: headOnly, closeConnection: close, to: &bytes)
        return bytes
    }

    private func writeReadySlots() {
        guard !isClosed else { return }
        takeReadySlots()
        connection.flush()
    }

    func collectReadyOutput() { takeReadySlots() }

    /// Moves the answers ready at the head of the queue into the output, in order, up to and
    /// including the first streamed one (which becomes `stream`); nothing while a stream is being
    /// sent.
    private func takeReadySlots() {
        guard stream == nil else { return }
        var closeAfter = false
        var taken = 0
        for slot in slots {
            if case .streaming(let answer, let close) = slot {
                stream = answer
                readyBytesInSlots -= answer.remainingCount
                taken += 1
                closeAfter = close
                break
            }
            guard case .ready(let bytes, let close) = slot else { break }
            connection.appendOutput(bytes)
            readyBytesInSlots -= bytes.count
            taken += 1
            if close {
                closeAfter = true
                break
            }
        }
        if taken > 0 {
            slots.removeFirst(taken)
            firstSlot += taken
        }
        if closeAfter {
            connection.stopReading()
            slots.removeAll()  // nothing after a closing response is ever sent
            readyBytesInSlots = 0
        }
        checkSlotInvariants()
    }

    /// Debug builds: `readyBytesInSlots` (a running sum, because the back-pressure check reads it
    /// for every request) equals what the slots hold, and no write is counted in flight that no
    /// pending slot holds.
    private func checkSlotInvariants() {
        #if DEBUG
        var bytes = 0
        var pendingWrites = 0
        for slot in slots {
            switch slot {
            case .ready(let answer, _): bytes += answer.count
            case .streaming(let answer, _): bytes += answer.remainingCount
            case .pending(let isWrite): if isWrite { pendingWrites += 1 }
            }
        }
        assert(readyBytesInSlots == bytes, "readyBytesInSlots (\(readyBytesInSlots)) drifted from the slots it counts (\(bytes))")
        assert(writesInFlight <= pendingWrites, "\(writesInFlight) writes in flight but \(pendingWrites) pending write slots")
        assert(waiting.allSatisfy { $0.slot >= firstSlot && $0.slot - firstSlot < slots.count }, "a waiting request's slot is gone")
        #endif
    }

    /// The output is drained: puts the stream's next piece in it, and once the stream is
    /// finished, the answers ready after it.
    func outputDrained() {
        guard var answer = stream else { return }
        connection.appendOutput { answer.appendNext(to: &$0) }
        if answer.isFinished {
            stream = nil
            takeReadySlots()
        } else {
            stream = answer
        }
    }

    func madeRoom() {
        if !waiting.isEmpty { releaseWaiting() }
    }

    func connectionClosed() {
        isClosed = true
        slots.removeAll()
        readyBytesInSlots = 0
        stream = nil
        waiting.removeAll()
    }

    /// Records an answer in the loop's metrics; a 5xx is logged too (rate-limited).
    func recordAnswer(route: RouteName, method: String, status: Int, started: ContinuousClock.Instant) {
        front.metrics.loops[loop.index].record(route: route, method: method, status: status, duration: .now - started)
        if status >= 500 { connection.logError("\(method) \(route.rawValue) answered \(status)") }
    }
}
