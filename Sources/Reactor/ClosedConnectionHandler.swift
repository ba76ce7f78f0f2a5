/// What a `Connection` holds in place of its handler once closed: it answers every question
/// with "nothing", so a late call does no harm, and it breaks the reference cycle between a
/// connection and a handler that holds it (a handler may outlive the connection, held by a
/// completion still in flight in the engine).
final class ClosedConnectionHandler: ConnectionHandler, Sendable {
    static let shared = ClosedConnectionHandler()

    func consume(_ bytes: UnsafeRawBufferPointer) {}
    func handleNextMessage() -> MessageStep { .stop }
    func collectReadyOutput() {}
    func outputDrained() {}
    func madeRoom() {}
    func partialMessageTimedOut(after waited: Duration) -> [UInt8]? { nil }
    func connectionClosed() {}
    var holdsPartialMessage: Bool { false }
    var mayHoldMessages: Bool { false }
    var pendingMessages: Int { 0 }
    var heldOutputBytes: Int { 0 }
    var hasUnfinishedAnswers: Bool { false }
}
