import Platform
import CLinuxShims
import StorageEngine
import WireProtocol
#if canImport(Glibc)
import Glibc
#endif

/// One client connection, owned by one event loop.
///
/// Requests are decoded as bytes arrive and answered strictly in order (pipelining): each request
/// takes the next response slot; a handler may fill its slot at once (a GET) or later, from the
/// engine's committer thread (a PUT, once durable); filled slots at the head of the queue are
/// written out in order.
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
/// - Memory per connection is bounded: the decoder's limits bound the input, and it holds at most
///   one read chunk beyond a partial request; no request is decoded, and none read, while
///   `maxPendingResponses` requests are unanswered or unwritten, or `maxBufferedOutput` bytes of
///   answers wait to be sent (`answerBytesWaiting`, whatever the route), and a read held back
///   behind a write is not answered while they do. A streamed answer (a GET of a value over
///   `KeyValueHandlers.streamedValueThreshold`, `StreamedValueAnswer`) counts there with all its
///   unsent bytes, though only one chunk of it (64 KiB of base64) is ever built: the rest is a
///   reference to the stored value. So a client that never reads makes us build at most 4 MiB
///   of answers plus one more small answer (a GET of a 64 KiB value under the largest key, fully
///   escaped, is about 112 KB) plus one chunk, and reference values
///   whose answers total under 4 MiB plus one (which are the map's own bytes unless the keys
///   were written since), for at most `writeTimeout` once the kernel takes no more of them.
/// - Streamed answers keep their place: one is taken from the slots only once everything before
///   it is in `output`, and the slots after it only once its last piece is (`takeReadySlots`).
/// - Fairness: in one loop iteration (a turn) a connection decodes at most `maxRequestsPerTurn`
///   requests and reads at most `maxReadBytesPerTurn` bytes; then it asks the loop to continue it
///   in the next iteration (`EventLoop.continueNextIteration`: the decoder may hold requests that
///   no epoll event would report), so that every other ready connection is served in between.
/// - After a malformed request, the error response is the last thing sent, then the connection closes.
final class HTTPConnection: EventLoopHandler, @unchecked Sendable {
    static let maxPendingResponses = 64
    static let maxBufferedOutput = 4 << 20
    static let readChunk = 64 << 10
    static let maxRequestsPerTurn = 64
    static let maxReadBytesPerTurn = 4 * readChunk

    let descriptor: Int32
    let loop: EventLoop
    private let server: LoopServer
    private var decoder: HTTPRequestDecoder

    /// Responses not yet written, in request order. `firstSlot` is the slot number of `slots[0]`.
    private var slots: [ResponseSlot] = []
    private var firstSlot = 0
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// Bytes of answers in `.ready` and `.streaming` slots, not yet moved to `output` (behind an
    /// unanswered request).
    private var readyBytesInSlots = 0
    /// The streamed answer being sent: its next piece goes into `output` once `output` is drained;
    /// no later slot is taken until it is finished.
    private var stream: StreamedValueAnswer?
    /// Answer bytes held for this client, built or not: counted against `maxBufferedOutput`.
    private var answerBytesWaiting: Int { output.count - outputOffset + readyBytesInSlots + (stream?.remainingCount ?? 0) }
    /// The last time the kernel took answer bytes, or the time answers started waiting for it to
    /// (the write timeout).
    private var lastWriteProgress = ContinuousClock.now

    /// The loop iteration of the current turn and the work done in it (see the type's comment).
    private var turn: UInt64 = 0
    private var requestsThisTurn = 0
    private var bytesReadThisTurn = 0
    private var continuesNextIteration = false
    /// Set while `processInput` runs: a nested call (an answer flushed while decoding resumes
    /// reading) only sets `inputChanged`, and the running call makes another pass.
    private var isProcessingInput = false
    private var inputChanged = false

    private var readingPaused = false
    private var watchingWrites = false
    /// No more requests will be read: a malformed request, `Connection: close`, the peer's EOF,
    /// or a shutdown. The connection closes once every slot is written.
    private var noMoreRequests = false
    private(set) var isClosed = false

    /// When the current partial request began (for the request-read timeout), and the last time
    /// anything happened (for the idle timeout).
    private var partialRequestSince: ContinuousClock.Instant?
    private var lastActivity = ContinuousClock.now

    enum ResponseSlot {
        case pending(isWrite: Bool)
        case ready([UInt8], closeAfter: Bool)
        case streaming(StreamedValueAnswer, closeAfter: Bool)
    }

    /// Writes handed to the engine and not yet answered.
    private var writesInFlight = 0
    /// Requests held back to keep the connection's order (see the type's comment).
    private var waiting: [(request: HTTPRequest, slot: Int, isWrite: Bool)] = []
    private var releasingWaiting = false

    init(descriptor: Int32, server: LoopServer) {
        self.descriptor = descriptor
        self.loop = server.loop
        self.server = server
        self.decoder = HTTPRequestDecoder(limits: server.configuration.limits)
    }

    /// True when nothing is buffered, in flight or unwritten: the connection may be closed at
    /// any moment without losing an answer (graceful shutdown closes such connections).
    /// Answer bytes built and held in memory: `output`'s buffer and the answers waiting in slots
    /// (tests: that a streamed answer is never built whole).
    var builtAnswerBytes: Int {
        slots.reduce(output.capacity) { sum, slot in
            if case .ready(let bytes, _) = slot { sum + bytes.count } else { sum }
        }
    }

    var isIdle: Bool { slots.isEmpty && outputOffset == output.count && stream == nil && decoder.isIdle }

    /// Hands a write to the engine at the end of this loop iteration, with every other write the
    /// loop reads in it (`LoopServer.submitQueuedWrites`). On the loop's thread.
    func submitAtIterationEnd(_ write: Database.Submission) {
        loop.assertOnLoop()
        server.queuedWrites.append(write)
    }

    // MARK: Events

    func handleEvents(_ events: UInt32) {
        if events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            close()  // both directions are gone: nothing can be delivered any more
            return
        }
        if lingeringUntil != nil {
            discardInput()
            return
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 {
            processInput()
        }
        if !isClosed && events & EPOLLOUT.rawValue != 0 {
            flush()
        }
    }

    /// The rest of a turn that was cut short (`maxRequestsPerTurn`, `maxReadBytesPerTurn`).
    func continueWork() {
        continuesNextIteration = false
        guard !isClosed else { return }
        if lingeringUntil != nil { return discardInput() }
        processInput()
    }

    /// Starts a new turn's budget if the loop has moved on since the last one.
    private func beginTurnIfNew() {
        guard turn != loop.iteration else { return }
        turn = loop.iteration
        requestsThisTurn = 0
        bytesReadThisTurn = 0
    }

    private func continueNextIteration() {
        guard !continuesNextIteration else { return }
        continuesNextIteration = true
        loop.continueNextIteration(self)
    }

    /// Decodes the requests already buffered, then reads and decodes more, within the turn's
    /// budget and as long as the back-pressure limits allow.
    private func processInput() {
        guard !isProcessingInput else {
            inputChanged = true
            return
        }
        isProcessingInput = true
        defer { isProcessingInput = false }
        beginTurnIfNew()
        repeat {
            inputChanged = false
            readAndDecode()
        } while inputChanged && !isClosed
    }

    private func readAndDecode() {
        guard !readingPaused, !noMoreRequests, !isClosed else { return }
        let buffer = server.readBuffer
        var socketDrained = false
        // An idle decoder holds no request: the usual case (one request per event) reads first.
        var decoderMayHoldRequests = !decoder.isIdle
        while true {
            if decoderMayHoldRequests {
                switch decodeRequests() {
                case .stopped: return
                case .turnUsed: return continueNextIteration()
                case .needsBytes: if socketDrained { return }
                }
            }
            decoderMayHoldRequests = true
            guard bytesReadThisTurn < HTTPConnection.maxReadBytesPerTurn else { return continueNextIteration() }
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                lastActivity = .now
                bytesReadThisTurn += count
                decoder.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                socketDrained = count < buffer.count  // decode it, then wait for epoll
            } else if count == 0 {
                // The peer finished sending. Answer what was asked, then close.
                stopReading()
                closeIfDone()
                return
            } else {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { close() }
                return
            }
        }
    }

    /// Why `decodeRequests` stopped.
    private enum DecodeOutcome {
        /// The decoder holds no complete request: read more.
        case needsBytes
        /// Reading is paused (back-pressure), over, or the connection closed.
        case stopped
        /// The turn's `maxRequestsPerTurn` are used: continue in the next iteration.
        case turnUsed
    }

    private func decodeRequests() -> DecodeOutcome {
        var outcome = DecodeOutcome.needsBytes
        while true {
            if noMoreRequests || readingPaused || isClosed {
                outcome = .stopped
                break
            }
            if slots.count >= HTTPConnection.maxPendingResponses || answerBytesWaiting >= HTTPConnection.maxBufferedOutput {
                pauseReading()
                outcome = .stopped
                break
            }
            if requestsThisTurn >= HTTPConnection.maxRequestsPerTurn {
                outcome = .turnUsed
                break
            }
            let event: HTTPDecodeEvent?
            do {
                event = try decoder.next()
            } catch {
                server.metrics.loops[loop.index].record(route: .other, method: "OTHER", status: error.status, duration: .zero)
                let response = HTTPResponse.json(status: error.status, error: error.description)
                appendReady(encode(response, headOnly: false, close: true), closeAfter: true)
                stopReading()
                outcome = .stopped
                break
            }
            guard let event else { break }
            requestsThisTurn += 1
            switch event {
            case .continueExpected:
                // An interim response; it takes a slot so that it follows every earlier answer.
                appendReady(HTTPResponseEncoder.continueResponse, closeAfter: false)
            case .request(let request):
                partialRequestSince = nil  // the request-read timeout starts again with the next one
                let slot = firstSlot + slots.count
                let isWrite = request.method == "PUT" || request.method == "DELETE" || request.method == "POST"
                slots.append(.pending(isWrite: isWrite))
                if !request.keepAlive { stopReading() }
                if waiting.isEmpty && (isWrite || writesInFlight == 0) {
                    dispatch(request, slot: slot, isWrite: isWrite)
                } else {
                    waiting.append((request, slot, isWrite))
                }
            }
        }
        partialRequestSince = decoder.isIdle ? nil : (partialRequestSince ?? .now)
        writeReadySlots()
        return outcome
    }

    private func appendReady(_ bytes: [UInt8], closeAfter: Bool) {
        slots.append(.ready(bytes, closeAfter: closeAfter))
        readyBytesInSlots += bytes.count
    }

    /// No more requests will be read from this connection. Input stops being watched too, so
    /// that level-triggered epoll does not keep reporting bytes (or an end of input) that nobody
    /// will read while the last answers are still being prepared.
    private func stopReading() {
        guard !noMoreRequests else { return }
        noMoreRequests = true
        updateInterest()
    }

    // MARK: Responses

    private func dispatch(_ request: HTTPRequest, slot: Int, isWrite: Bool) {
        if isWrite { writesInFlight += 1 }
        server.router.route(request, Responder(connection: self, slot: slot, request: request, started: .now))
    }

    /// Dispatches held-back requests, in order, as far as the ordering rule allows, and a read
    /// only while less than `maxBufferedOutput` of answers wait to be sent (the rest go when
    /// `flush` makes room).
    private func releaseWaiting() {
        guard !releasingWaiting else { return }  // a dispatch that answers at once re-enters here
        releasingWaiting = true
        defer { releasingWaiting = false }
        while let next = waiting.first, next.isWrite || (writesInFlight == 0 && answerBytesWaiting < HTTPConnection.maxBufferedOutput) {
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
        takeReadySlots()
        flush()
    }

    /// Moves the answers ready at the head of the queue into `output`, in order, up to and
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
            if outputOffset == output.count && bytes.count > HTTPConnection.readChunk {
                // A large answer (a value just under the streaming threshold) with nothing before
                // it: send its own buffer rather than copy it. Small ones are copied into `output`,
                // whose buffer is kept for the next answer.
                output = bytes
                outputOffset = 0
            } else {
                output.append(contentsOf: bytes)
            }
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
            stopReading()
            slots.removeAll()  // nothing after a closing response is ever sent
            readyBytesInSlots = 0
        }
        assert(readyBytesInSlots == bytesInSlotsRecounted, "readyBytesInSlots drifted from the slots it counts")
    }

    /// What `readyBytesInSlots` caches (it is kept as a running sum because the back-pressure
    /// check reads it for every request): debug builds recount it after each change of the slots.
    private var bytesInSlotsRecounted: Int {
        slots.reduce(0) { sum, slot in
            switch slot {
            case .ready(let bytes, _): sum + bytes.count
            case .streaming(let answer, _): sum + answer.remainingCount
            default: sum
            }
        }
    }

    /// `output` is drained: puts the stream's next piece in it, and once the stream is finished,
    /// the answers ready after it.
    private func refillFromStream() {
        guard var answer = stream else { return }
        // Keeps the buffer for the next piece, unless earlier answers grew it well beyond one.
        output.removeAll(keepingCapacity: output.capacity <= 2 * HTTPConnection.readChunk)
        outputOffset = 0
        answer.appendNext(to: &output)
        if answer.isFinished {
            stream = nil
            takeReadySlots()
        } else {
            stream = answer
        }
    }

    private func flush() {
        repeat {
            while outputOffset < output.count {
                let written = output.withUnsafeBytes { raw in
                    write(descriptor, raw.baseAddress! + outputOffset, raw.count - outputOffset)
                }
                if written > 0 {
                    outputOffset += written
                    lastActivity = .now
                    lastWriteProgress = lastActivity
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    // The kernel's buffer is full: from now on the write timeout runs.
                    if !watchingWrites { lastWriteProgress = .now }
                    watchWrites(true)
                    madeRoom()
                    return
                } else {
                    close()
                    return
                }
            }
            refillFromStream()
        } while outputOffset < output.count
        output.removeAll(keepingCapacity: output.capacity <= HTTPConnection.readChunk)
        outputOffset = 0
        watchWrites(false)
        madeRoom()
        closeIfDone()
    }

    /// After answers were written: release reads held back by the byte limit, and resume
    /// reading once under half of both back-pressure limits (so that it does not flap).
    private func madeRoom() {
        guard !isClosed else { return }
        if !waiting.isEmpty { releaseWaiting() }
        if readingPaused && slots.count < HTTPConnection.maxPendingResponses / 2
            && answerBytesWaiting <= HTTPConnection.maxBufferedOutput / 2 {
            resumeReading()
        }
    }

    private func closeIfDone() {
        if noMoreRequests && slots.isEmpty && outputOffset == output.count && stream == nil && lingeringUntil == nil { lingerThenClose() }
    }

    // MARK: Lingering close

    /// Set while the connection waits for the client's end after its last response: closing a
    /// socket that still has unread input makes the kernel send a reset, which can destroy the
    /// response in flight (a 400 after a malformed pipelined request, say). So: shut down our
    /// sending side, read and discard until the client closes or `lingerTime` passes, then close.
    private var lingeringUntil: ContinuousClock.Instant?
    static let lingerTime: Duration = .seconds(2)

    private func lingerThenClose() {
        guard !isClosed else { return }
        shutdown(descriptor, Int32(SHUT_WR))
        lingeringUntil = .now + HTTPConnection.lingerTime
        changeInterest(EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
        discardInput()
        // Shutting down, with nothing unread: a reset can no longer hurt an answer, and waiting
        // for every idle client to hang up would only delay the shutdown.
        if !isClosed && server.isShuttingDown { close() }
    }

    private func discardInput() {
        let buffer = server.readBuffer
        beginTurnIfNew()
        while !isClosed {
            guard bytesReadThisTurn < HTTPConnection.maxReadBytesPerTurn else { return continueNextIteration() }
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                bytesReadThisTurn += count
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            close()  // end of input, or an error
        }
    }

    // MARK: Interest in events

    private func pauseReading() {
        guard !readingPaused else { return }
        readingPaused = true
        updateInterest()
    }

    private func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        updateInterest()
        processInput()  // the decoder may hold whole requests, which no epoll event would report
    }

    private func watchWrites(_ watch: Bool) {
        guard watch != watchingWrites, !isClosed else { return }
        watchingWrites = watch
        updateInterest()
    }

    private func updateInterest() {
        guard !isClosed, lingeringUntil == nil else { return }
        var events: UInt32 = 0
        if !readingPaused && !noMoreRequests { events |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if watchingWrites || output.count > outputOffset { events |= EPOLLOUT.rawValue }
        changeInterest(events)
    }

    /// Asks the loop to watch `events`. If epoll refuses (ENOMEM, say), the connection would
    /// stay watched for the old events: never woken to send its answers, or woken without end
    /// for input it no longer reads. So it is closed (its client sees the connection end),
    /// counted (`smalldb_http_connection_watch_failures_total`) and logged.
    private func changeInterest(_ events: UInt32) {
        let failure = server.configuration.connectionWatchFaults?.take() ?? loop.modify(descriptor, events: events)
        guard let code = failure else { return }
        server.metrics.connectionWatchFailures.add(1, ordering: .relaxed)
        server.logServerError("cannot change the events watched on a connection: epoll_ctl: \(errnoDescription(code)) (errno \(code)); closed it")
        close()
    }

    // MARK: Timeouts and shutdown

    /// Called on every loop tick. Closes a connection whose client takes none of its answers,
    /// is too slow to send a request, or has been idle too long.
    func checkTimeouts(now: ContinuousClock.Instant) {
        let configuration = server.configuration
        if let lingeringUntil {
            if now >= lingeringUntil { close() }
            return
        }
        if output.count > outputOffset, configuration.writeTimeout > .zero, now - lastWriteProgress > configuration.writeTimeout {
            server.metrics.writeTimedOutConnections.add(1, ordering: .relaxed)
            close()
            return
        }
        if let since = partialRequestSince, configuration.requestReadTimeout > .zero, now - since > configuration.requestReadTimeout {
            server.metrics.timedOutConnections.add(1, ordering: .relaxed)
            server.metrics.loops[loop.index].record(route: .other, method: "OTHER", status: 408, duration: now - since)
            let response = HTTPResponse.json(status: 408, error: "the request was not received in time (request timeout)")
            stopReading()
            partialRequestSince = nil
            if slots.isEmpty && stream == nil {  // (never in the middle of a streamed answer)
                output.append(contentsOf: encode(response, headOnly: false, close: true))
                flush()
            }
            closeIfDone()
        } else if isIdle && configuration.idleTimeout > .zero && now - lastActivity > configuration.idleTimeout {
            server.metrics.timedOutConnections.add(1, ordering: .relaxed)
            close()
        }
    }

    /// Graceful shutdown: read no more requests; answer those in flight, then close.
    func finishAndClose() {
        stopReading()
        closeIfDone()
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        loop.deregister(descriptor)
        Glibc.close(descriptor)
        slots.removeAll()
        readyBytesInSlots = 0
        output.removeAll()
        stream = nil
        waiting.removeAll()
        server.connectionClosed(self)
    }
}

/// Answers one request. Holds what is needed to fill the request's slot from any thread.
struct Responder: Sendable {
    let connection: HTTPConnection
    let slot: Int
    let request: HTTPRequest
    let started: ContinuousClock.Instant

    var headOnly: Bool { request.method == "HEAD" }

    /// Sends `response` for this request; callable from any thread, exactly once.
    func send(_ response: HTTPResponse, route: RouteName) {
        if connection.loop.isOnLoop {
            deliver(response, route: route)
        } else {
            connection.loop.execute { [self] in deliver(response, route: route) }
        }
    }

    /// Sends the answer to an acknowledged write of one key: 200 `{"ok":true}` with
    /// `X-Revision: <revision>` and, for a PUT, `ETag: "<revision>"` (the key's new mod revision,
    /// ready for the next If-Match): `send(KeyValueHandlers.written(…))`, with the usual case's
    /// head built from bytes encoded once instead of through `HTTPResponse` (the PUT route is the
    /// benchmarked one). The two give the same bytes. (The on-loop test is written out here and
    /// in `send` rather than shared through a closure: that closure would be allocated per answer.)
    func sendWritten(revision: UInt64, etag: Bool, route: RouteName) {
        guard request.keepAlive, request.version == .http1_1, request.method != "HEAD" else {
            return send(KeyValueHandlers.written(revision: revision, etag: etag), route: route)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Responder.writtenStart.count + Responder.writtenEnd.count + 64)
        bytes.append(contentsOf: Responder.writtenStart)
        if etag {
            bytes.append(contentsOf: Responder.etagName)
            DecimalText.append(revision, to: &bytes)
            bytes.append(contentsOf: Responder.etagEnd)
        }
        bytes.append(contentsOf: Responder.revisionName)
        DecimalText.append(revision, to: &bytes)
        bytes.append(contentsOf: Responder.writtenEnd)
        let encoded = bytes
        if connection.loop.isOnLoop {
            deliver(encoded: encoded, status: 200, route: route, close: false)
        } else {
            connection.loop.execute { [self] in deliver(encoded: encoded, status: 200, route: route, close: false) }
        }
    }

    // `KeyValueHandlers.written` as a keep-alive HTTP/1.1 answer (`sendWritten`), in the order
    // `HTTPResponseEncoder` writes it: status line, Content-Type, ETag, X-Revision,
    // Content-Length, the blank line, the body.
    private static let writtenStart = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n".utf8)
    private static let etagName = Array("ETag: \"".utf8)
    private static let etagEnd = Array("\"\r\n".utf8)
    private static let revisionName = Array("X-Revision: ".utf8)
    private static let writtenEnd = Array("\r\nContent-Length: \(KeyValueHandlers.ok.body.count)\r\n\r\n".utf8) + KeyValueHandlers.ok.body

    /// Sends a 200 GET answer whose body is `bodyStart`, `value` in base64, and
    /// `StreamedValueAnswer.suffix`, produced a chunk at a time as the socket drains (a large
    /// value); `response` gives the status and fields (its body is ignored). A HEAD gets the
    /// head alone. Callable from any thread, exactly once.
    func sendStreamed(_ response: HTTPResponse, bodyStart: [UInt8], value: StoredValue, route: RouteName) {
        if connection.loop.isOnLoop {
            deliverStreamed(response, bodyStart: bodyStart, value: value, route: route)
        } else {
            connection.loop.execute { [self] in deliverStreamed(response, bodyStart: bodyStart, value: value, route: route) }
        }
    }

    /// On the loop's thread: records the answer, encodes it and fills the request's slot.
    private func deliver(_ response: HTTPResponse, route: RouteName) {
        let close = !request.keepAlive
        let response = withConnectionFields(response, close: close)
        deliver(encoded: connection.encode(response, headOnly: headOnly, close: close), status: response.status, route: route, close: close)
    }

    private func deliverStreamed(_ response: HTTPResponse, bodyStart: [UInt8], value: StoredValue, route: RouteName) {
        let close = !request.keepAlive
        let response = withConnectionFields(response, close: close)
        var head: [UInt8] = []
        let bodyCount = StreamedValueAnswer.bodyCount(bodyStart: bodyStart.count, valueCount: value.count)
        HTTPResponseEncoder.encodeHead(response, contentLength: bodyCount, closeConnection: close, to: &head)
        if headOnly { return deliver(encoded: head, status: response.status, route: route, close: close) }
        connection.recordAnswer(route: route, method: request.method, status: response.status, started: started)
        connection.complete(slot: slot, stream: StreamedValueAnswer(head: head, bodyStart: bodyStart, value: value), closeAfter: close)
    }

    /// `response` with the fields the request's connection needs besides "Connection: close",
    /// which the encoder writes.
    @inline(__always)
    private func withConnectionFields(_ response: HTTPResponse, close: Bool) -> HTTPResponse {
        guard !close && request.version == .http1_0 else { return response }
        var response = response
        response.headers.append(("Connection", "keep-alive"))  // HTTP/1.0 closes unless told
        return response
    }

    private func deliver(encoded bytes: [UInt8], status: Int, route: RouteName, close: Bool) {
        connection.recordAnswer(route: route, method: request.method, status: status, started: started)
        connection.complete(slot: slot, bytes: bytes, closeAfter: close)
    }
}

extension HTTPConnection {
    fileprivate func recordAnswer(route: RouteName, method: String, status: Int, started: ContinuousClock.Instant) {
        server.metrics.loops[loop.index].record(route: route, method: method, status: status, duration: .now - started)
        if status >= 500 { server.logServerError("\(method) \(route.rawValue) answered \(status)") }
    }
}

extension HTTPResponse {
    /// A JSON response whose body is `{"error":"…"}` and a newline, as the Go server writes it.
    static func json(status: Int, error message: String) -> HTTPResponse {
        json(status: status, errorBytes: Array(message.utf8))
    }

    /// The same, for a message that holds raw bytes (a key, which need not be UTF-8): JSONWriter
    /// escapes them as Go does.
    static func json(status: Int, errorBytes message: [UInt8]) -> HTTPResponse {
        var body: [UInt8] = Array(#"{"error":"#.utf8)
        message.withUnsafeBytes { JSONWriter.appendString($0, to: &body) }
        body.append(contentsOf: Array("}\n".utf8))
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: body)
    }

    /// A JSON response with a prepared body (the caller includes the trailing newline).
    static func json(status: Int, body: [UInt8], headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }
}
