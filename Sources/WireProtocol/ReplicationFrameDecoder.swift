/// Turns a byte stream, in pieces of any size, back into replication frames.
///
/// Safe against any input: it never traps, and it never allocates by a length it has not checked.
/// A frame's type is checked as soon as its first byte arrives (so an HTTP request, whose 'G' or
/// 'P' is no frame type, is refused at once, not after waiting for a payload that never comes), and
/// its payload length against `maxPayloadSize` and the type's possible sizes as soon as the header
/// arrives, before any of the payload is buffered for it. Counts inside a payload (history
/// entries, message length) are checked against the payload bytes that remain.
///
/// Once `nextFrame` throws, the decoder is spent and throws the same error forever: a byte stream
/// cannot be resynchronised after a bad frame, the connection must be dropped.
///
/// Buffering: consumed bytes are dropped only when they are at least half the buffer, so each
/// byte is moved at most about once however the stream is cut (amortised O(1) per byte).
public struct ReplicationFrameDecoder {
    /// The largest payload accepted, checked at each frame's header. A connection lowers it for
    /// the states where only small frames may come (a primary's connections, a backup before the
    /// welcome), so a peer cannot make it buffer more; a frame already returned is not affected.
    public var maxPayloadSize: Int {
        didSet { maxPayloadSize = max(0, maxPayloadSize) }
    }
    private var buffer: [UInt8] = []
    /// Where the next frame starts in `buffer`; the bytes before it are consumed.
    private var start = 0
    private var failure: ReplicationFrameError?

    public init(maxPayloadSize: Int = ReplicationProtocol.maxPayloadSize) {
        self.maxPayloadSize = max(0, maxPayloadSize)
    }

    /// Bytes received but not yet returned as frames (part of a frame, or whole frames not yet taken).
    public var bufferedByteCount: Int { buffer.count - start }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The next whole frame, or nil when more bytes are needed.
    public mutating func nextFrame() throws(ReplicationFrameError) -> ReplicationFrame? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            buffer = []
            start = 0
            throw error
        }
    }

    private mutating func decodeNext() throws(ReplicationFrameError) -> ReplicationFrame? {
        let available = buffer.count - start
        guard available >= 1 else { return nil }
        let typeByte = buffer[start]
        guard let type = ReplicationFrameType(rawValue: typeByte) else { throw .unknownFrameType(typeByte) }
        guard available >= ReplicationProtocol.frameHeaderSize else { return nil }
        let length = buffer.withUnsafeBytes { Int($0.loadLittleEndianUInt32(at: start + 1)) }
        guard length <= maxPayloadSize else { throw .payloadTooLarge(size: length, limit: maxPayloadSize) }
        guard type.payloadSizes.contains(length) else {
            throw .malformed("\(type) payload of \(length) bytes (possible: \(type.payloadSizes.lowerBound)…\(min(type.payloadSizes.upperBound, maxPayloadSize)))")
        }
        let frameSize = ReplicationProtocol.frameHeaderSize + length + ReplicationProtocol.frameTrailerSize
        guard available >= frameSize else {
            // The length is checked: room for the whole frame now, so a large frame arriving in
            // 64 KiB reads grows the buffer once rather than by doubling.
            if buffer.capacity - start < frameSize {
                compactIfWorthwhile(force: true)
                buffer.reserveCapacity(frameSize)
            }
            return nil
        }
        // Array.withUnsafeBytes rethrows untyped errors: the outcome crosses it as a Result.
        let outcome = buffer.withUnsafeBytes { raw -> Result<ReplicationFrame, ReplicationFrameError> in
            let crcOffset = start + ReplicationProtocol.frameHeaderSize + length
            let stored = raw.loadLittleEndianUInt32(at: crcOffset)
            let computed = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<crcOffset]))
            guard stored == computed else { return .failure(.checksumMismatch(stored: stored, computed: computed)) }
            let payload = UnsafeRawBufferPointer(rebasing: raw[(start + ReplicationProtocol.frameHeaderSize)..<crcOffset])
            return Result { () throws(ReplicationFrameError) in try Self.parse(type, payload) }
        }
        let frame = try outcome.get()
        start += frameSize
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            start = 0
        }
        return frame
    }

    /// Drops consumed bytes when they are at least half of what is buffered (or, with `force`,
    /// whenever there are any).
    private mutating func compactIfWorthwhile(force: Bool = false) {
        guard start > 0 else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else if force || start >= buffer.count - start {
            buffer.removeSubrange(0..<start)
        } else {
            return
        }
        start = 0
    }

    private static func parse(
        _ type: ReplicationFrameType, _ payload: UnsafeRawBufferPointer
    ) throws(ReplicationFrameError) -> ReplicationFrame {
        var reader = PayloadReader(payload, type: type)
        let frame: ReplicationFrame
        switch type {
        case .hello:
            guard try reader.u32() == ReplicationProtocol.magic else { throw .badMagic }
            let version = try reader.u16()
            guard version == ReplicationProtocol.version else { throw .unsupportedVersion(version) }
            let epoch = try reader.u64()
            let hasLineage = try reader.u8()
            let lineage = try reader.lineage()
            let position = try reader.position()
            let prefixCRC = try reader.u32()
            let hasEpochStart = try reader.u8()
            let epochStart = try reader.position()
            let foundLineage: Lineage?
            switch hasLineage {
            case 0:
                guard lineage == Lineage(high: 0, low: 0) else { throw .malformed("hello without a lineage has non-zero lineage bytes") }
                foundLineage = nil
            case 1:
                foundLineage = lineage
            default:
                throw .malformed("hello lineage flag \(hasLineage) (expected 0 or 1)")
            }
            let foundEpochStart: ReplicationPosition?
            switch hasEpochStart {
            case 0:
                guard epochStart == ReplicationPosition(generation: 0, offset: 0) else {
                    throw .malformed("hello without an epoch start has non-zero epoch start bytes")
                }
                foundEpochStart = nil
            case 1:
                foundEpochStart = epochStart
            default:
                throw .malformed("hello epoch start flag \(hasEpochStart) (expected 0 or 1)")
            }
            frame = .hello(Hello(
                protocolVersion: version, epoch: epoch, lineage: foundLineage, position: position, prefixCRC: prefixCRC,
                epochStart: foundEpochStart))
        case .welcome:
            let epoch = try reader.u64()
            let lineage = try reader.lineage()
            let modeByte = try reader.u8()
            guard let mode = Welcome.Mode(rawValue: modeByte) else { throw .malformed("unknown welcome mode \(modeByte)") }
            let count = Int(try reader.u32())
            guard count <= reader.remaining / ReplicationFrameType.epochStartSize else {
                throw .malformed("welcome history of \(count) entries in \(reader.remaining) bytes")
            }
            var history: [EpochStart] = []
            history.reserveCapacity(count)
            for _ in 0..<count {
                history.append(EpochStart(epoch: try reader.u64(), start: try reader.position()))
            }
            if let problem = epochHistoryProblem(history, current: epoch) {
                throw .malformed("welcome history entry \(problem.index): \(problem.reason)")
            }
            frame = .welcome(Welcome(epoch: epoch, lineage: lineage, history: history, mode: mode))
        case .refuse:
            let codeByte = try reader.u8()
            guard let code = Refusal.Code(rawValue: codeByte) else { throw .malformed("unknown refusal code \(codeByte)") }
            let length = Int(try reader.u32())
            guard length <= reader.remaining else { throw .malformed("refusal message of \(length) bytes in \(reader.remaining)") }
            let bytes = try reader.bytes(length)
            guard let message = String(validating: bytes, as: UTF8.self) else {
                throw .malformed("refusal message is not UTF-8")
            }
            frame = .refuse(Refusal(code: code, message: message))
        case .snapshotBegin:
            frame = .snapshotBegin(generation: try reader.u64(), totalBytes: try reader.u64())
        case .snapshotChunk:
            frame = .snapshotChunk(Array(try reader.bytes(reader.remaining)))
        case .snapshotEnd:
            frame = .snapshotEnd(crc32: try reader.u32())
        case .records:
            let position = try reader.position()
            frame = .records(at: position, bytes: Array(try reader.bytes(reader.remaining)))
        case .startSegment:
            frame = .startSegment(generation: try reader.u64())
        case .heartbeat:
            frame = .heartbeat(epoch: try reader.u64(), position: try reader.position())
        case .ack:
            frame = .ack(try reader.position())
        case .authChallenge:
            guard try reader.u32() == ReplicationProtocol.magic else { throw .badMagic }
            frame = .authChallenge(nonce: Array(try reader.bytes(ReplicationProtocol.nonceSize)))
        case .authResponse:
            frame = .authResponse(
                nonce: Array(try reader.bytes(ReplicationProtocol.nonceSize)), proof: Array(try reader.bytes(ReplicationProtocol.proofSize)))
        case .authProof:
            frame = .authProof(Array(try reader.bytes(ReplicationProtocol.proofSize)))
        }
        guard reader.remaining == 0 else { throw .malformed("\(reader.remaining) trailing bytes in a \(type) payload") }
        return frame
    }
}

/// A bounds-checked cursor over one payload.
private struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    let type: ReplicationFrameType
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, type: ReplicationFrameType) {
        self.bytes = bytes
        self.type = type
    }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int) throws(ReplicationFrameError) -> Int {
        guard count >= 0, count <= remaining else {
            throw .malformed("\(type) payload of \(bytes.count) bytes ends early")
        }
        defer { offset += count }
        return offset
    }

    mutating func u8() throws(ReplicationFrameError) -> UInt8 { bytes[try take(1)] }

    mutating func u16() throws(ReplicationFrameError) -> UInt16 {
        let at = try take(2)
        return UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    mutating func u32() throws(ReplicationFrameError) -> UInt32 { bytes.loadLittleEndianUInt32(at: try take(4)) }

    mutating func u64() throws(ReplicationFrameError) -> UInt64 { bytes.loadLittleEndianUInt64(at: try take(8)) }

    mutating func bytes(_ count: Int) throws(ReplicationFrameError) -> UnsafeRawBufferPointer {
        let at = try take(count)
        return UnsafeRawBufferPointer(rebasing: bytes[at..<(at + count)])
    }

    mutating func lineage() throws(ReplicationFrameError) -> Lineage {
        // Lineage(bytes:) cannot fail on exactly 16 bytes.
        Lineage(bytes: try bytes(Lineage.byteCount)) ?? Lineage(high: 0, low: 0)
    }

    mutating func position() throws(ReplicationFrameError) -> ReplicationPosition {
        ReplicationPosition(generation: try u64(), offset: try u64())
    }
}
