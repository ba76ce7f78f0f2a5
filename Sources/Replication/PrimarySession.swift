import Dispatch
import Platform
import StorageEngine
import WireProtocol

/// One backup attached to this primary: its connection, how far it has acknowledged, and the
/// sending side of the stream.
///
/// Who touches it:
/// - the session's thread (`ReplicationNode.serve`) sends the welcome, the snapshot and the
///   catch-up records, until the backup is in sync;
/// - then the group committer sends each batch (`replicateLive`) and waits for its ack: the
///   output rule, one round trip per batch;
/// - the ack reader thread (`readAcks`) receives every ack, from the first frame after the
///   welcome until the connection fails;
/// - the heartbeat thread sends heartbeats.
/// Sends are whole frames (the connection serialises them), so these never interleave bytes.
final class PrimarySession: Sendable {
    let connection: any ReplicationConnection
    var peer: String { connection.peer }

    private struct Progress {
        /// Everything before this position is durable on the backup.
        var acknowledged: LogPosition
        /// The end of the last record sent.
        var sent: LogPosition
        /// The position the committer waits for, if it waits.
        var awaited: LogPosition?
        /// Why the stream failed, once it has.
        var failure: String?
        var lastAck: ContinuousClock.Instant = .now
    }
    private let progress: Lock<Progress>
    /// Signalled by the ack reader when `awaited` is reached or the stream fails.
    private let ackArrived = DispatchSemaphore(value: 0)
    /// The committer's frame buffer (only the committer thread uses it).
    private let frameBuffer = Lock<[UInt8]>([])

    init(connection: any ReplicationConnection, start: LogPosition) {
        self.connection = connection
        self.progress = Lock(Progress(acknowledged: start, sent: start))
    }

    var acknowledged: LogPosition { progress.withLock { $0.acknowledged } }
    var sent: LogPosition { progress.withLock { $0.sent } }
    var failure: String? { progress.withLock { $0.failure } }
    var lastAck: ContinuousClock.Instant { progress.withLock { $0.lastAck } }

    // MARK: Sending

    /// Sends `records` (whole WAL records at `start`), in frames of at most the protocol's size,
    /// split at record boundaries.
    /// `timeout` bounds the whole send (nil: the connection's own send timeout).
    func sendRecords(_ records: UnsafeRawBufferPointer, at start: LogPosition, timeout: Duration? = nil) throws(TransportError) {
        // Before sending: the ack may arrive before `send` returns.
        progress.withLock { $0.sent = LogPosition(generation: start.generation, offset: start.offset + records.count) }
        try frameBuffer.withLock { (buffer) throws(TransportError) in
            var offset = 0
            while offset < records.count {
                let end = PrimarySession.frameEnd(records, from: offset)
                buffer.removeAll(keepingCapacity: true)
                let position = ReplicationPosition(LogPosition(generation: start.generation, offset: start.offset + offset))
                ReplicationFrameEncoder.appendRecords(
                    at: position, bytes: UnsafeRawBufferPointer(rebasing: records[offset..<end]), to: &buffer)
                try buffer.withBytes { (raw) throws(TransportError) in try connection.send(encoded: raw, timeout: timeout) }
                offset = end
            }
            if buffer.capacity > 8 << 20 { buffer = [] }  // do not pin a huge buffer
        }
    }

    /// Where the frame starting at `offset` ends: as many whole records as fit in `limit` bytes
    /// (always at least one: the protocol's frame holds the largest record).
    static func frameEnd(
        _ records: UnsafeRawBufferPointer, from offset: Int, limit: Int = ReplicationProtocol.maxRecordBytesPerFrame
    ) -> Int {
        guard records.count - offset > limit else { return records.count }
        var end = offset
        while end < records.count {
            guard records.count - end >= WALFormat.headerSize else { return records.count }
            let length = Int(records.loadUnaligned(fromByteOffset: end, as: UInt32.self).littleEndian)
            let size = WALFormat.headerSize + length + WALFormat.trailerSize
            if end + size - offset > limit && end > offset { break }
            end = min(records.count, end + size)
        }
        return end
    }

    /// Marks a segment switch in the stream.
    func sendSegmentStart(_ generation: UInt64, timeout: Duration? = nil) throws(TransportError) {
        progress.withLock { $0.sent = LogPosition(generation: generation, offset: 0) }
        try connection.send(.startSegment(generation: generation), timeout: timeout)
    }

    /// The output rule for one committed batch (on the committer thread): send it, then wait
    /// until the backup has made it durable. Returns nil once it has, or why it did not within
    /// `timeout` (zero: no limit).
    func replicateLive(_ records: UnsafeRawBufferPointer, at start: LogPosition, timeout: Duration) -> String? {
        do throws(TransportError) {
            try sendRecords(records, at: start, timeout: timeout > .zero ? timeout : nil)
        } catch {
            fail("sending to the backup failed: \(error)")
            return failure
        }
        let end = LogPosition(generation: start.generation, offset: start.offset + records.count)
        return waitForAcknowledgement(of: end, timeout: timeout)
    }

    /// Waits until the backup acknowledges `position`; nil once it has, else why not.
    func waitForAcknowledgement(of position: LogPosition, timeout: Duration) -> String? {
        let deadline = timeout > .zero ? ContinuousClock.now + timeout : nil
        while true {
            let outcome: String?? = progress.withLock { progress in
                if let failure = progress.failure { return .some(failure) }
                if progress.acknowledged >= position { return .some(nil) }
                progress.awaited = position
                return nil
            }
            if let outcome { return outcome }
            if let deadline {
                let remaining = deadline - .now
                if remaining <= .zero || ackArrived.wait(timeout: .now() + remaining.dispatchInterval) == .timedOut {
                    // One last look: the ack may have come just as the time ran out.
                    let late = progress.withLock { progress -> Bool in
                        progress.awaited = nil
                        return progress.failure == nil && progress.acknowledged >= position
                    }
                    if late { return nil }
                    if ContinuousClock.now >= deadline {
                        return "the backup did not acknowledge \(position) within \(timeout.logDescription) (-repl-ack-timeout)"
                    }
                }
            } else {
                ackArrived.wait()
            }
        }
    }

    // MARK: Receiving

    /// The ack reader thread: records every ack until the connection fails or the backup sends
    /// anything but an ack (a protocol violation).
    func readAcks() {
        while true {
            let frame: ReplicationFrame
            do throws(TransportError) {
                frame = try connection.receive(timeout: nil)
            } catch {
                fail(error == .peerClosed ? "the backup closed the connection" : "receiving from the backup failed: \(error)")
                return
            }
            guard case .ack(let wirePosition) = frame, let position = LogPosition(wirePosition) else {
                try? connection.send(.refuse(Refusal(code: .protocolViolation, message: "expected an ack")))
                fail("the backup sent \(frame.kind) where an ack was expected")
                return
            }
            let wake: Bool = progress.withLock { progress in
                guard position >= progress.acknowledged, position <= progress.sent else {
                    progress.failure = progress.failure ?? "the backup acknowledged \(position), which was never sent"
                    return true
                }
                progress.acknowledged = position
                progress.lastAck = .now
                if let awaited = progress.awaited, position >= awaited {
                    progress.awaited = nil
                    return true
                }
                return false
            }
            if wake { ackArrived.signal() }
            if failure != nil {
                connection.close()
                return
            }
        }
    }

    /// Ends the session: records why (the first reason wins), closes the connection, and wakes a
    /// committer waiting for an ack.
    func fail(_ reason: String) {
        progress.withLock { $0.failure = $0.failure ?? reason }
        connection.close()
        ackArrived.signal()
    }
}

extension ReplicationFrame {
    /// The frame's kind, for logs (never its content).
    var kind: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .refuse: "refuse"
        case .snapshotBegin: "snapshotBegin"
        case .snapshotChunk: "snapshotChunk"
        case .snapshotEnd: "snapshotEnd"
        case .records: "records"
        case .startSegment: "startSegment"
        case .heartbeat: "heartbeat"
        case .ack: "ack"
        case .authChallenge: "authChallenge"
        case .authResponse: "authResponse"
        case .authProof: "authProof"
        }
    }
}
