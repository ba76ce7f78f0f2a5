/// Appends replication frames to a buffer (the layout is in ReplicationFrame.swift).
///
/// Encoding cannot fail on a valid value; what would make an unreadable frame is a caller's bug
/// and traps: a payload over `ReplicationProtocol.maxPayloadSize` (split records with
/// `ReplicationProtocol.maxRecordBytesPerFrame`). Refusal messages are cut to
/// `Refusal.maxMessageBytes`. A nonce or proof of another size than the protocol's traps too. A welcome's history is sent as given: the decoder is the one that
/// checks it.
public enum ReplicationFrameEncoder {
    /// Appends `frame`, whole, to `buffer`.
    public static func append(_ frame: ReplicationFrame, to buffer: inout [UInt8]) {
        switch frame {
        case .hello(let hello):
            let start = begin(.hello, in: &buffer)
            buffer.appendLittleEndian(ReplicationProtocol.magic)
            buffer.append(UInt8(truncatingIfNeeded: hello.protocolVersion))
            buffer.append(UInt8(truncatingIfNeeded: hello.protocolVersion >> 8))
            buffer.appendLittleEndian(hello.epoch)
            if let lineage = hello.lineage {
                buffer.append(1)
                lineage.appendBytes(to: &buffer)
            } else {
                buffer.append(0)
                buffer.append(contentsOf: repeatElement(0, count: Lineage.byteCount))
            }
            appendPosition(hello.position, to: &buffer)
            buffer.appendLittleEndian(hello.prefixCRC)
            buffer.append(hello.epochStart == nil ? 0 : 1)
            appendPosition(hello.epochStart ?? ReplicationPosition(generation: 0, offset: 0), to: &buffer)
            finish(startingAt: start, in: &buffer)
        case .welcome(let welcome):
            let start = begin(.welcome, in: &buffer)
            buffer.appendLittleEndian(welcome.epoch)
            welcome.lineage.appendBytes(to: &buffer)
            buffer.append(welcome.mode.rawValue)
            buffer.appendLittleEndian(UInt32(welcome.history.count))
            for entry in welcome.history {
                buffer.appendLittleEndian(entry.epoch)
                appendPosition(entry.start, to: &buffer)
            }
            finish(startingAt: start, in: &buffer)
        case .refuse(let refusal):
            let start = begin(.refuse, in: &buffer)
            let message = Refusal.truncated(refusal.message).utf8
            buffer.append(refusal.code.rawValue)
            buffer.appendLittleEndian(UInt32(message.count))
            buffer.append(contentsOf: message)
            finish(startingAt: start, in: &buffer)
        case .snapshotBegin(let generation, let totalBytes):
            let start = begin(.snapshotBegin, in: &buffer)
            buffer.appendLittleEndian(generation)
            buffer.appendLittleEndian(totalBytes)
            finish(startingAt: start, in: &buffer)
        case .snapshotChunk(let bytes):
            let start = begin(.snapshotChunk, in: &buffer)
            buffer.append(contentsOf: bytes)
            finish(startingAt: start, in: &buffer)
        case .snapshotEnd(let crc):
            let start = begin(.snapshotEnd, in: &buffer)
            buffer.appendLittleEndian(crc)
            finish(startingAt: start, in: &buffer)
        case .records(let position, let bytes):
            bytes.withUnsafeBytes { appendRecords(at: position, bytes: $0, to: &buffer) }
        case .startSegment(let generation):
            let start = begin(.startSegment, in: &buffer)
            buffer.appendLittleEndian(generation)
            finish(startingAt: start, in: &buffer)
        case .heartbeat(let epoch, let position):
            let start = begin(.heartbeat, in: &buffer)
            buffer.appendLittleEndian(epoch)
            appendPosition(position, to: &buffer)
            finish(startingAt: start, in: &buffer)
        case .ack(let position):
            let start = begin(.ack, in: &buffer)
            appendPosition(position, to: &buffer)
            finish(startingAt: start, in: &buffer)
        case .authChallenge(let nonce):
            precondition(nonce.count == ReplicationProtocol.nonceSize, "a nonce of \(nonce.count) bytes")
            let start = begin(.authChallenge, in: &buffer)
            buffer.appendLittleEndian(ReplicationProtocol.magic)
            buffer.append(contentsOf: nonce)
            finish(startingAt: start, in: &buffer)
        case .authResponse(let nonce, let proof):
            precondition(nonce.count == ReplicationProtocol.nonceSize, "a nonce of \(nonce.count) bytes")
            precondition(proof.count == ReplicationProtocol.proofSize, "a proof of \(proof.count) bytes")
            let start = begin(.authResponse, in: &buffer)
            buffer.append(contentsOf: nonce)
            buffer.append(contentsOf: proof)
            finish(startingAt: start, in: &buffer)
        case .authProof(let proof):
            precondition(proof.count == ReplicationProtocol.proofSize, "a proof of \(proof.count) bytes")
            let start = begin(.authProof, in: &buffer)
            buffer.append(contentsOf: proof)
            finish(startingAt: start, in: &buffer)
        }
    }

    /// Appends a records frame straight from the committer's buffer: the hot path, one copy of the
    /// records (into `buffer`) and one CRC pass. `bytes.count` ≤ `maxRecordBytesPerFrame`.
    public static func appendRecords(
        at position: ReplicationPosition, bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8]
    ) {
        precondition(bytes.count <= ReplicationProtocol.maxRecordBytesPerFrame, "records frame of \(bytes.count) bytes is over the limit")
        buffer.reserveCapacity(buffer.count + encodedRecordsFrameSize(byteCount: bytes.count))
        let start = begin(.records, in: &buffer)
        appendPosition(position, to: &buffer)
        buffer.append(contentsOf: bytes)
        finish(startingAt: start, in: &buffer)
    }

    /// The whole size of a records frame carrying `byteCount` WAL bytes.
    public static func encodedRecordsFrameSize(byteCount: Int) -> Int {
        ReplicationProtocol.frameHeaderSize + ReplicationProtocol.recordsHeaderSize + byteCount
            + ReplicationProtocol.frameTrailerSize
    }

    /// `frame`, encoded on its own.
    public static func encode(_ frame: ReplicationFrame) -> [UInt8] {
        var buffer: [UInt8] = []
        append(frame, to: &buffer)
        return buffer
    }

    private static func begin(_ type: ReplicationFrameType, in buffer: inout [UInt8]) -> Int {
        let start = buffer.count
        buffer.append(type.rawValue)
        buffer.appendLittleEndian(UInt32(0))  // payload length, patched by finish
        return start
    }

    private static func finish(startingAt start: Int, in buffer: inout [UInt8]) {
        let payloadLength = buffer.count - start - ReplicationProtocol.frameHeaderSize
        precondition(payloadLength <= ReplicationProtocol.maxPayloadSize, "frame payload of \(payloadLength) bytes is over the limit")
        buffer.storeLittleEndian(UInt32(payloadLength), at: start + 1)
        let crc = buffer.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        buffer.appendLittleEndian(crc)
    }

    private static func appendPosition(_ position: ReplicationPosition, to buffer: inout [UInt8]) {
        buffer.appendLittleEndian(position.generation)
        buffer.appendLittleEndian(position.offset)
    }
}
