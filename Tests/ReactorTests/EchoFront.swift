import Reactor

/// A trivial protocol for testing the reactor alone: each line is answered with itself.
/// "big" is answered with `bigAnswerSize` bytes (back-pressure); "bye" is answered, then the
/// connection reads no more and closes (a change of watched events); a partial line that times
/// out is answered "timeout".
final class EchoFront: ConnectionFront, @unchecked Sendable {
    let bigAnswerSize: Int

    init(bigAnswerSize: Int = 1 << 20) { self.bigAnswerSize = bigAnswerSize }

    func attach(to loop: EventLoop) {}

    func makeHandler(for connection: Connection) -> any ConnectionHandler {
        EchoHandler(connection: connection, bigAnswerSize: bigAnswerSize)
    }

    func rejection(limit: Int) -> [UInt8] { Array("full \(limit)\n".utf8) }
}

final class EchoHandler: ConnectionHandler {
    let connection: Connection
    let bigAnswerSize: Int
    private var buffer: [UInt8] = []
    /// Lines answered so far.
    private(set) var answered = 0

    init(connection: Connection, bigAnswerSize: Int) {
        self.connection = connection
        self.bigAnswerSize = bigAnswerSize
    }

    func consume(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }

    func handleNextMessage() -> MessageStep {
        guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return .needsBytes }
        let line = Array(buffer[..<newline])
        buffer.removeFirst(newline + 1)
        answered += 1
        switch String(decoding: line, as: UTF8.self) {
        case "big":
            connection.appendOutput([UInt8](repeating: UInt8(ascii: "x"), count: bigAnswerSize - 1) + [UInt8(ascii: "\n")])
        case "bye":
            connection.appendOutput(Array("bye\n".utf8))
            connection.stopReading()
            return .stop
        default:
            connection.appendOutput(line + [UInt8(ascii: "\n")])
        }
        return .message
    }

    func collectReadyOutput() {}
    func outputDrained() {}
    func madeRoom() {}
    func partialMessageTimedOut(after waited: Duration) -> [UInt8]? { Array("timeout\n".utf8) }
    func connectionClosed() {}
    var holdsPartialMessage: Bool { !buffer.isEmpty }
    var mayHoldMessages: Bool { buffer.contains(UInt8(ascii: "\n")) }
    var pendingMessages: Int { 0 }
    var heldOutputBytes: Int { 0 }
    var hasUnfinishedAnswers: Bool { false }
}
