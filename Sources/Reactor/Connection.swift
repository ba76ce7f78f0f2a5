import Platform

/// One client connection, owned by one event loop: the socket, its output, and the rules of
/// `ConnectionPolicy`. Its `handler` (the protocol front's side) decodes and answers.
///
/// The protocol of a connection, on its loop's thread:
/// 1. Input: while reading is allowed (not paused, not stopped), read a chunk into the loop's
///    buffer, give it to the handler, and have the handler handle messages (`processInput`).
/// 2. Back-pressure: before each message, stop reading (pause) when the handler has
///    `maxPendingMessages` outstanding or `answerBytesWaiting` reaches `maxBufferedOutput`;
///    resume once under half of both, after answers were written (`madeRoom`).
/// 3. Fairness: after `maxMessagesPerTurn` messages or `maxReadBytesPerTurn` bytes in one loop
///    iteration, continue in the next (`EventLoop.continueNextIteration`: buffered messages would
///    raise no epoll event).
/// 4. Output: the handler appends answers; `flush` writes until the kernel takes no more, then
///    watches for writability; each time the output drains, the handler may append more
///    (`outputDrained`: a stream's next piece).
/// 5. Close: once no more input will be read (`stopReading`: the end of input, a malformed
///    message, a shutdown) and every answer is written, shut down the sending side and linger:
///    read and discard until the client closes or `lingerTime` passes (closing with unread input
///    makes the kernel send a reset, which can destroy the last answer in flight). During a
///    shutdown, close at once instead.
/// 6. Timeouts, on each tick: the write timeout (answers wait, the client takes none), the
///    message-read timeout (a partial message), the idle timeout (nothing in flight).
///
/// What must stay true:
/// - Everything runs on the owning loop's thread (hence `@unchecked Sendable`: the reference
///   crosses threads only inside tasks given to `EventLoop.execute`).
/// - Memory is bounded: at most one read chunk beyond the handler's own limits is read while
///   reading is allowed, and none while paused; output beyond `maxBufferedOutput` is never
///   asked for (the handler holds at most one more answer, and a stream one piece at a time).
/// - After `close`, nothing touches the descriptor, and the handler is told exactly once and then
///   let go (`ClosedConnectionHandler` takes its place).
/// - No access to a stored property overlaps another (a call into the handler never happens
///   inside a mutation of one). Debug builds check it at run time, as Swift does by default, and
///   the tests run there; release builds mark the mutable state `@exclusivity(unchecked)`, since
///   that check, made on every access through a class reference, cost 5% of a GET's CPU
///   (docs/PERFORMANCE.md). The same holds for `HTTPConnection`.
public final class Connection: EventLoopHandler, @unchecked Sendable {
    public let descriptor: Int32
    public let loop: EventLoop
    /// Set by the front right after the connection is made (`ConnectionFront.makeHandler`).
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    public private(set) var handler: (any ConnectionHandler)!
    private let owner: LoopConnections
    private var policy: ConnectionPolicy { owner.policy }
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    var registration: Registration?

    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var output: [UInt8] = []
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var outputOffset = 0

    /// The loop iteration of the current turn and the work done in it.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var turn: UInt64 = 0
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var messagesThisTurn = 0
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var bytesReadThisTurn = 0
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var continuesNextIteration = false
    /// Set while `processInput` runs: a nested call (an answer flushed while handling resumes
    /// reading) only sets `inputChanged`, and the running call makes another pass.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var isProcessingInput = false
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var inputChanged = false

    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    public private(set) var isReadingPaused = false
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var watchingWrites = false
    /// No more input will be read. The connection closes once every answer is written.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    public private(set) var noMoreInput = false
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    public private(set) var isClosed = false
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var lingeringUntil: ContinuousClock.Instant?

    /// When the current partial message began (the read timeout), the last time anything
    /// happened (the idle timeout), and the last time the kernel took output or output started
    /// waiting for it (the write timeout): iteration times (`EventLoop.now`), which is precise
    /// enough for timeouts checked on a 250 ms tick.
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var partialMessageSince: ContinuousClock.Instant?
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var lastActivity = ContinuousClock.now
    #if !DEBUG
    @exclusivity(unchecked)
    #endif
    private var lastWriteProgress = ContinuousClock.now

    init(descriptor: Int32, owner: LoopConnections) {
        self.descriptor = descriptor
        self.loop = owner.loop
        self.owner = owner
    }

    func attachHandler(_ handler: any ConnectionHandler) { self.handler = handler }

    /// Answer bytes held for this client: unsent output and what the handler holds.
    public var answerBytesWaiting: Int { answerBytesWaiting(handler) }

    private func answerBytesWaiting(_ handler: any ConnectionHandler) -> Int { output.count - outputOffset + handler.heldOutputBytes }

    /// Whether more answers may be built now (under `maxBufferedOutput`).
    public var hasRoomForAnswers: Bool { answerBytesWaiting < policy.maxBufferedOutput }

    /// Whether the server is shutting down (a front closes idle work sooner).
    public var isShuttingDown: Bool { owner.isShuttingDown }

    /// The output buffer's capacity (tests: that a streamed answer is never built whole).
    public var outputCapacity: Int { output.capacity }

    /// Nothing buffered, in flight or unwritten.
    private var isIdle: Bool { outputOffset == output.count && !handler.hasUnfinishedAnswers && !handler.mayHoldMessages }

    /// Logs a failure, rate-limited with the loop's other lines.
    public func logError(_ message: String) { owner.logError(message) }

    // MARK: Events

    public func handleEvents(_ events: EpollEvents) {
        if !events.isDisjoint(with: [.hangUp, .error]) {
            close()  // both directions are gone: nothing can be delivered any more
            return
        }
        if lingeringUntil != nil { return discardInput() }
        if !events.isDisjoint(with: .input) { processInput() }
        if !isClosed && events.contains(.writable) { flush() }
    }

    /// The rest of a turn that was cut short.
    public func continueWork() {
        continuesNextIteration = false
        guard !isClosed else { return }
        if lingeringUntil != nil { return discardInput() }
        processInput()
    }

    private func beginTurnIfNew() {
        guard turn != loop.iteration else { return }
        turn = loop.iteration
        messagesThisTurn = 0
        bytesReadThisTurn = 0
    }

    private func continueNextIteration() {
        guard !continuesNextIteration else { return }
        continuesNextIteration = true
        loop.continueNextIteration(self)
    }

    /// Steps 1–3: handles the messages already buffered, then reads and handles more, within
    /// the turn's budget and as long as back-pressure allows.
    public func processInput() {
        guard !isProcessingInput else {
            inputChanged = true
            return
        }
        isProcessingInput = true
        defer { isProcessingInput = false }
        beginTurnIfNew()
        repeat {
            inputChanged = false
            readAndHandle()
        } while inputChanged && !isClosed
    }

    private func readAndHandle() {
        guard !isReadingPaused, !noMoreInput, !isClosed else { return }
        let buffer = owner.readBuffer
        var socketDrained = false
        // An idle decoder holds no message: the usual case (one message per event) reads first.
        var mayHoldMessages = handler.mayHoldMessages
        while true {
            if mayHoldMessages {
                switch handleMessages() {
                case .stopped: return
                case .turnUsed: return continueNextIteration()
                case .needsBytes: if socketDrained { return }
                }
            }
            mayHoldMessages = true
            guard bytesReadThisTurn < policy.maxReadBytesPerTurn else { return continueNextIteration() }
            switch SocketIO.read(descriptor, into: buffer) {
            case .bytes(let count):
                lastActivity = loop.now
                bytesReadThisTurn += count
                handler.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                socketDrained = count < buffer.count  // handle it, then wait for epoll
            case .endOfInput:
                // The peer finished sending. Answer what was asked, then close.
                stopReading()
                closeIfDone()
                return
            case .wouldBlock:
                return
            case .peerGone, .failed:
                close()
                return
            }
        }
    }

    private enum HandleOutcome { case needsBytes, stopped, turnUsed }

    private func handleMessages() -> HandleOutcome {
        var outcome = HandleOutcome.needsBytes
        // Read once (one retain, not one per use): the handler is only replaced by `close`,
        // and the loop stops at the first check after one.
        let handler = self.handler!
        let policy = self.policy
        loop: while true {
            if noMoreInput || isReadingPaused || isClosed {
                outcome = .stopped
                break
            }
            if handler.pendingMessages >= policy.maxPendingMessages || answerBytesWaiting(handler) >= policy.maxBufferedOutput {
                pauseReading()
                outcome = .stopped
                break
            }
            if messagesThisTurn >= policy.maxMessagesPerTurn {
                outcome = .turnUsed
                break
            }
            switch handler.handleNextMessage() {
            case .needsBytes:
                break loop
            case .stop:
                outcome = .stopped
                break loop
            case .message:
                messagesThisTurn += 1
                partialMessageSince = nil  // the read timeout starts again with the next one
            case .progress:
                messagesThisTurn += 1
            }
        }
        guard !isClosed else { return .stopped }
        partialMessageSince = handler.holdsPartialMessage ? (partialMessageSince ?? loop.now) : nil
        handler.collectReadyOutput()
        flush()
        return outcome
    }

    /// No more input will be read. Input stops being watched too, so that level-triggered
    /// epoll does not keep reporting bytes (or an end of input) that nobody will read while the
    /// last answers are still being prepared.
    public func stopReading() {
        guard !noMoreInput else { return }
        noMoreInput = true
        updateInterest()
    }

    // MARK: Output

    /// Appends an answer to the output (not written until `flush`). A large answer with nothing
    /// before it is taken as the output buffer itself rather than copied.
    public func appendOutput(_ bytes: [UInt8]) {
        if outputOffset == output.count && bytes.count > policy.readChunk {
            output = bytes
            outputOffset = 0
        } else {
            output.append(contentsOf: bytes)
        }
    }

    /// Lets the handler append to the output in place (a stream's next piece). `body` must not
    /// call back into the connection.
    public func appendOutput(_ body: (inout [UInt8]) -> Void) {
        body(&output)
    }

    /// Step 4: writes until the output is drained or the kernel takes no more.
    public func flush() {
        guard !isClosed else { return }
        repeat {
            while outputOffset < output.count {
                let outcome = output.withUnsafeBytes { raw in
                    // Not `raw[outputOffset...]`: the slice's metadata was looked up per write.
                    SocketIO.write(descriptor, UnsafeRawBufferPointer(start: raw.baseAddress! + outputOffset, count: raw.count - outputOffset))
                }
                switch outcome {
                case .wrote(let count):
                    outputOffset += count
                    lastActivity = loop.now
                    lastWriteProgress = lastActivity
                case .wouldBlock:
                    // The kernel's buffer is full: from now on the write timeout runs.
                    if !watchingWrites { lastWriteProgress = loop.now }
                    watchWrites(true)
                    madeRoom()
                    return
                case .peerGone, .failed:
                    close()
                    return
                }
            }
            // Drained: keep the buffer for the next piece, unless earlier answers grew it well
            // beyond one.
            output.removeAll(keepingCapacity: output.capacity <= 2 * policy.readChunk)
            outputOffset = 0
            handler.outputDrained()
            guard !isClosed else { return }
        } while outputOffset < output.count
        output.removeAll(keepingCapacity: output.capacity <= policy.readChunk)
        watchWrites(false)
        madeRoom()
        closeIfDone()
    }

    /// Step 2's second half: after answers were written, let the handler go on with work held
    /// back by the byte limit, and resume reading once under half of both limits.
    private func madeRoom() {
        guard !isClosed else { return }
        handler.madeRoom()
        if isReadingPaused && handler.pendingMessages < policy.maxPendingMessages / 2
            && answerBytesWaiting <= policy.maxBufferedOutput / 2 {
            resumeReading()
        }
    }

    /// Step 5: linger, then close, once nothing more will be read or written.
    public func closeIfDone() {
        guard !isClosed, noMoreInput, lingeringUntil == nil, outputOffset == output.count, !handler.hasUnfinishedAnswers else { return }
        lingerThenClose()
    }

    private func lingerThenClose() {
        SocketIO.shutdownSending(descriptor)
        lingeringUntil = loop.now + policy.lingerTime
        changeInterest(.input)
        discardInput()
        // Shutting down, with nothing unread: a reset can no longer hurt an answer, and waiting
        // for every idle client to hang up would only delay the shutdown.
        if !isClosed && owner.isShuttingDown { close() }
    }

    private func discardInput() {
        let buffer = owner.readBuffer
        beginTurnIfNew()
        while !isClosed {
            guard bytesReadThisTurn < policy.maxReadBytesPerTurn else { return continueNextIteration() }
            switch SocketIO.read(descriptor, into: buffer) {
            case .bytes(let count): bytesReadThisTurn += count
            case .wouldBlock: return
            case .endOfInput, .peerGone, .failed: close()
            }
        }
    }

    // MARK: Interest in events

    private func pauseReading() {
        guard !isReadingPaused else { return }
        isReadingPaused = true
        updateInterest()
    }

    private func resumeReading() {
        guard isReadingPaused else { return }
        isReadingPaused = false
        updateInterest()
        processInput()  // the handler may hold whole messages, which no epoll event would report
    }

    private func watchWrites(_ watch: Bool) {
        guard watch != watchingWrites, !isClosed else { return }
        watchingWrites = watch
        updateInterest()
    }

    private func updateInterest() {
        guard !isClosed, lingeringUntil == nil else { return }
        var events: EpollEvents = []
        if !isReadingPaused && !noMoreInput { events.formUnion(.input) }
        if watchingWrites || output.count > outputOffset { events.insert(.writable) }
        changeInterest(events)
    }

    /// Asks the loop to watch `events`. If epoll refuses (ENOMEM, say), the connection would
    /// stay watched for the old events: never woken to send its answers, or woken without end
    /// for input it no longer reads. So it is closed (its client sees the connection end),
    /// counted (`ConnectionCounters.connectionWatchFailures`) and logged.
    private func changeInterest(_ events: EpollEvents) {
        guard let registration else { return }
        do throws(IOError) {
            if let code = policy.connectionWatchFaults?.take() { throw IOError("epoll_ctl", code: code) }
            try loop.modify(registration, events: events)
        } catch {
            owner.counters.connectionWatchFailures.add(1, ordering: .relaxed)
            owner.logError("cannot change the events watched on a connection: \(error); closed it")
            close()
        }
    }

    // MARK: Timeouts and shutdown

    /// Step 6, on every loop tick.
    func checkTimeouts(now: ContinuousClock.Instant) {
        if let lingeringUntil {
            if now >= lingeringUntil { close() }
            return
        }
        if output.count > outputOffset, policy.writeTimeout > .zero, now - lastWriteProgress > policy.writeTimeout {
            owner.counters.writeTimedOut.add(1, ordering: .relaxed)
            close()
            return
        }
        if let since = partialMessageSince, policy.messageReadTimeout > .zero, now - since > policy.messageReadTimeout {
            owner.counters.timedOut.add(1, ordering: .relaxed)
            let lastAnswer = handler.partialMessageTimedOut(after: now - since)
            stopReading()
            partialMessageSince = nil
            if let lastAnswer, !handler.hasUnfinishedAnswers {  // (never in the middle of a streamed answer)
                appendOutput(lastAnswer)
                flush()
            }
            closeIfDone()
        } else if isIdle && policy.idleTimeout > .zero && now - lastActivity > policy.idleTimeout {
            owner.counters.timedOut.add(1, ordering: .relaxed)
            close()
        }
    }

    /// Graceful shutdown: read no more; answer what is in flight, then close.
    func finishAndClose() {
        stopReading()
        closeIfDone()
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if let registration { loop.deregister(registration) }
        SocketIO.close(descriptor)
        output = []
        outputOffset = 0
        let closing = handler!
        handler = ClosedConnectionHandler.shared
        closing.connectionClosed()
        owner.connectionClosed(self)
    }
}
