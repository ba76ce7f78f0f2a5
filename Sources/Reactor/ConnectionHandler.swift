/// A protocol's side of one connection: its decoder, its answers, their order. The reactor's
/// `Connection` owns the socket, the output buffer, back-pressure, fairness, timeouts and the
/// close; it calls these on the loop's thread, and the handler calls back into the connection
/// (`appendOutput`, `flush`, `stopReading`, `close`) on that thread only.
public protocol ConnectionHandler: AnyObject {
    /// Bytes read from the socket. Copy them now: the buffer is the loop's and is reused.
    func consume(_ bytes: UnsafeRawBufferPointer)
    /// Decodes and acts on the next message from the bytes consumed so far. Called again while
    /// it returns `.message` or `.progress` and the turn's budget and back-pressure allow.
    func handleNextMessage() -> MessageStep
    /// Moves answers that are ready, in order, into the connection's output. The connection
    /// calls it before it writes after handling messages; the handler calls `flush` itself when
    /// an answer arrives later.
    func collectReadyOutput()
    /// The connection's output is drained: append what comes next, if anything (a streamed
    /// answer's next piece and the answers after it).
    func outputDrained()
    /// Answer bytes were written: work held back by the output limit may go on (answers held
    /// behind `Connection.hasRoomForAnswers`).
    func madeRoom()
    /// The client's read timeout passed with a partial message: the last answer to send, if the
    /// protocol has one (HTTP's 408). The connection reads no more and closes once it is sent.
    func partialMessageTimedOut(after waited: Duration) -> [UInt8]?
    /// The connection closed: release everything held for it.
    func connectionClosed()

    /// Bytes of a partial message are buffered (the read timeout runs while this is true).
    var holdsPartialMessage: Bool { get }
    /// Whole messages may be buffered (the decoder is not idle): worth decoding before reading.
    var mayHoldMessages: Bool { get }
    /// Messages read and not yet answered and written (`ConnectionPolicy.maxPendingMessages`).
    var pendingMessages: Int { get }
    /// Answer bytes the handler holds that are not in the connection's output yet.
    var heldOutputBytes: Int { get }
    /// Answers still to come or to be collected: the connection may not close after its last
    /// answer while this is true.
    var hasUnfinishedAnswers: Bool { get }
}

/// What `ConnectionHandler.handleNextMessage` did.
public enum MessageStep {
    /// A whole message was handled: the read timeout starts again with the next one.
    case message
    /// Something short of a message was handled (an interim answer): counts against the turn.
    case progress
    /// No complete message is buffered: read more.
    case needsBytes
    /// Handling stops (the handler stopped reading, or closed the connection).
    case stop
}
