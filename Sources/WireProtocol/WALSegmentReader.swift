/// Reads a WAL segment (one logfile.N) and says exactly how its end looks.
///
/// What it tolerates, and why (after LevelDB's log_reader):
/// - A clean end: the last record ends at the last byte.
/// - A torn tail: the bytes from some offset to the end hold no complete, checksum-valid record.
///   That is what a crash in the middle of an append leaves (a partial record, or zeros the file
///   system exposed after a size update). Those bytes were never acknowledged, so dropping them
///   loses nothing: `WALScanResult.tornTail`.
/// - Anything else is corruption: a record that is damaged (bad length, bad checksum, malformed
///   payload) *followed by a valid record somewhere after it*. Bytes after the damage were once
///   acknowledged, so the reader reports the offset and lets the caller refuse to guess.
///   `WALScanResult.corrupted`. (The Go reader truncated here silently; we do not.)
///
/// Where the search for a valid record after the damage starts: at the damaged record's declared
/// end when its header is self-consistent (a known opcode, and for a set or delete, a payload
/// length equal to 9 + key length + value length), else one byte after its start. Records follow
/// each other, so nothing inside an intact header's declared extent is a record: a crash that cuts
/// off a record whose value happens to contain an encoded record reads as a torn tail, not as
/// corruption. A damaged length field almost never stays consistent with the two entry lengths,
/// so its record falls back to the byte-by-byte search. (An out-of-order write-back inside one unsynced group write,
/// which leaves a damaged record followed by an intact unacknowledged one, reads as corruption: the
/// open is refused rather than guessed at, and truncation, if the operator allows it, loses
/// nothing that was acknowledged.)
///
/// The reader never traps and never allocates from a length it has not checked against the bytes
/// actually present.
public enum WALSegmentReader {
    /// Calls `body` with each valid record in order, stopping at the first damage, and returns how
    /// the segment ends. Records passed to `body` before a `.corrupted` result are valid records
    /// that precede the damage.
    public static func scan<E: Error>(
        _ bytes: UnsafeRawBufferPointer,
        _ body: (WALRecordView) throws(E) -> Void
    ) throws(E) -> WALScanResult {
        var offset = 0
        while offset < bytes.count {
            switch decodeRecord(in: bytes, at: offset) {
            case .record(let record):
                try body(record)
                offset = record.offset + record.encodedSize
            case .damaged(let damage):
                if let next = firstValidRecord(in: bytes, from: searchStart(in: bytes, damagedAt: offset)) {
                    return .corrupted(offset: offset, damage: damage, nextValidOffset: next)
                }
                return .tornTail(offset: offset, droppedBytes: bytes.count - offset, damage: damage)
            }
        }
        return .clean(endOffset: offset)
    }

    /// Decodes and validates the record starting at `offset`.
    public static func decodeRecord(in bytes: UnsafeRawBufferPointer, at offset: Int) -> WALDecodeStep {
        let available = bytes.count - offset
        guard available >= WALFormat.headerSize else { return .damaged(.incomplete) }
        let payloadLength = Int(bytes.loadLittleEndianUInt32(at: offset))
        guard payloadLength > 0 else { return .damaged(.zeroLength) }
        guard payloadLength <= WALFormat.maxPayloadSize else {
            return .damaged(.lengthTooLarge(payloadLength))
        }
        let total = WALFormat.headerSize + payloadLength + WALFormat.trailerSize
        guard available >= total else { return .damaged(.incomplete) }
        let payloadStart = offset + WALFormat.headerSize
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(payloadStart + payloadLength)])
        let storedCRC = bytes.loadLittleEndianUInt32(at: payloadStart + payloadLength)
        guard CRC32.checksum(payload) == storedCRC else { return .damaged(.checksumMismatch) }
        if let problem = validatePayload(payload) { return .damaged(problem) }
        return .record(WALRecordView(offset: offset, payload: payload))
    }

    /// Where to look for a valid record after a damaged one at `damagedOffset` (see the type's
    /// comment): its declared end if its header is self-consistent, else the next byte.
    public static func searchStart(in bytes: UnsafeRawBufferPointer, damagedAt damagedOffset: Int) -> Int {
        let next = damagedOffset + 1
        let available = bytes.count - damagedOffset
        let opcodeOffset = damagedOffset + WALFormat.headerSize
        guard available > WALFormat.headerSize else { return next }
        let payloadLength = Int(bytes.loadLittleEndianUInt32(at: damagedOffset))
        guard payloadLength >= WALFormat.batchHeaderSize, payloadLength <= WALFormat.maxPayloadSize else { return next }
        let declaredEnd = opcodeOffset + payloadLength + WALFormat.trailerSize
        switch bytes[opcodeOffset] {
        case WALOpcode.set.rawValue, WALOpcode.delete.rawValue:
            guard available >= WALFormat.headerSize + WALFormat.entryHeaderSize else { return next }
            let keyLength = Int(bytes.loadLittleEndianUInt32(at: opcodeOffset + 1))
            let valueLength = Int(bytes.loadLittleEndianUInt32(at: opcodeOffset + 5))
            return WALFormat.entryHeaderSize + keyLength + valueLength == payloadLength ? declaredEnd : next
        case WALOpcode.batch.rawValue:
            guard available >= WALFormat.headerSize + WALFormat.batchHeaderSize else { return next }
            let count = Int(bytes.loadLittleEndianUInt32(at: opcodeOffset + 1))
            let room = payloadLength - WALFormat.batchHeaderSize
            guard count <= room / WALFormat.entryHeaderSize else { return next }
            let entry = opcodeOffset + WALFormat.batchHeaderSize
            if count > 0 && bytes.count - entry >= WALFormat.entryHeaderSize {
                let opcode = bytes[entry]
                let keyLength = Int(bytes.loadLittleEndianUInt32(at: entry + 1))
                let valueLength = Int(bytes.loadLittleEndianUInt32(at: entry + 5))
                guard opcode == WALOpcode.set.rawValue || opcode == WALOpcode.delete.rawValue,
                      WALFormat.entryHeaderSize + keyLength + valueLength <= room
                else { return next }
            }
            return declaredEnd
        default:
            return next
        }
    }

    /// The offset of the first valid record that starts at or after `start`, if any. Only runs on
    /// the damage path. Cheap structural checks reject almost every offset before a CRC is
    /// computed.
    static func firstValidRecord(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var candidate = start
        // The smallest valid record: an empty batch (length, op and count, CRC).
        let minimumRecord = WALFormat.headerSize + WALFormat.batchHeaderSize + WALFormat.trailerSize
        while bytes.count - candidate >= minimumRecord {
            if plausibleRecordStart(in: bytes, at: candidate),
               case .record = decodeRecord(in: bytes, at: candidate)
            {
                return candidate
            }
            candidate += 1
        }
        return nil
    }

    static func plausibleRecordStart(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        let payloadLength = Int(bytes.loadLittleEndianUInt32(at: offset))
        guard payloadLength >= WALFormat.batchHeaderSize,
              payloadLength <= bytes.count - offset - WALFormat.headerSize - WALFormat.trailerSize
        else { return false }
        switch bytes[offset + WALFormat.headerSize] {
        case WALOpcode.set.rawValue, WALOpcode.delete.rawValue:
            guard payloadLength >= WALFormat.entryHeaderSize else { return false }
            let keyLength = Int(bytes.loadLittleEndianUInt32(at: offset + 5))
            let valueLength = Int(bytes.loadLittleEndianUInt32(at: offset + 9))
            return WALFormat.entryHeaderSize + keyLength + valueLength == payloadLength
        case WALOpcode.batch.rawValue:
            let count = Int(bytes.loadLittleEndianUInt32(at: offset + 5))
            return count <= (payloadLength - WALFormat.batchHeaderSize) / WALFormat.entryHeaderSize
        default:
            return false
        }
    }

    /// Checks that a checksum-valid payload is well formed: known opcodes, lengths that add up
    /// exactly, no nested batches, deletes without values.
    private static func validatePayload(_ payload: UnsafeRawBufferPointer) -> WALDamage? {
        switch payload[0] {
        case WALOpcode.set.rawValue, WALOpcode.delete.rawValue:
            switch parseEntry(payload, at: 0) {
            case .success(let end): return end == payload.count ? nil : .malformedPayload("entry lengths do not match the payload length")
            case .failure(let damage): return damage
            }
        case WALOpcode.batch.rawValue:
            guard payload.count >= WALFormat.batchHeaderSize else { return .malformedPayload("batch header is cut short") }
            let count = Int(payload.loadLittleEndianUInt32(at: 1))
            var offset = WALFormat.batchHeaderSize
            for _ in 0..<count {
                switch parseEntry(payload, at: offset) {
                case .success(let end): offset = end
                case .failure(let damage): return damage
                }
            }
            return offset == payload.count ? nil : .malformedPayload("batch entries do not fill the payload")
        case let opcode:
            return .unknownOpcode(opcode)
        }
    }

    /// Validates one entry at `offset`; returns the offset just past it.
    static func parseEntry(_ payload: UnsafeRawBufferPointer, at offset: Int) -> Result<Int, WALDamage> {
        guard payload.count - offset >= WALFormat.entryHeaderSize else {
            return .failure(.malformedPayload("entry header is cut short"))
        }
        let opcode = payload[offset]
        guard opcode == WALOpcode.set.rawValue || opcode == WALOpcode.delete.rawValue else {
            return .failure(.unknownOpcode(opcode))
        }
        let keyLength = Int(payload.loadLittleEndianUInt32(at: offset + 1))
        let valueLength = Int(payload.loadLittleEndianUInt32(at: offset + 5))
        if opcode == WALOpcode.delete.rawValue && valueLength != 0 {
            return .failure(.malformedPayload("a delete carries a value"))
        }
        let end = offset + WALFormat.entryHeaderSize
        guard keyLength <= payload.count - end, valueLength <= payload.count - end - keyLength else {
            return .failure(.malformedPayload("entry lengths run past the payload"))
        }
        return .success(end + keyLength + valueLength)
    }
}

/// One step of decoding: a valid record, or why the bytes at that offset are not one.
public enum WALDecodeStep {
    case record(WALRecordView)
    case damaged(WALDamage)
}

/// Why the bytes at an offset are not a valid record.
public enum WALDamage: Error, Sendable, Equatable, CustomStringConvertible {
    /// The record runs past the end of the bytes.
    case incomplete
    /// A payload length of zero (often: zeros where a record should start).
    case zeroLength
    /// A payload length over `WALFormat.maxPayloadSize`.
    case lengthTooLarge(Int)
    /// The payload's CRC does not match the stored one.
    case checksumMismatch
    /// The payload's first byte, or an entry's, is not a known opcode.
    case unknownOpcode(UInt8)
    /// The checksum matched but the payload's structure does not add up.
    case malformedPayload(String)

    public var description: String {
        switch self {
        case .incomplete: "record is incomplete"
        case .zeroLength: "record length is zero"
        case .lengthTooLarge(let length): "record length \(length) exceeds the 64 MiB limit"
        case .checksumMismatch: "checksum mismatch"
        case .unknownOpcode(let opcode): "unknown opcode \(opcode)"
        case .malformedPayload(let why): "malformed payload: \(why)"
        }
    }
}

/// How a scanned segment ends.
public enum WALScanResult: Sendable, Equatable {
    /// Every byte belongs to a valid record.
    case clean(endOffset: Int)
    /// Valid records up to `offset`, then `droppedBytes` bytes that hold no valid record: a crash
    /// mid-append. Safe to cut off.
    case tornTail(offset: Int, droppedBytes: Int, damage: WALDamage)
    /// A damaged record at `offset` with a valid record at `nextValidOffset` after it: acknowledged
    /// data lies beyond the damage. Not safe to cut off without the operator's say-so.
    case corrupted(offset: Int, damage: WALDamage, nextValidOffset: Int)

    /// Where the valid prefix of the segment ends.
    public var validPrefixLength: Int {
        switch self {
        case .clean(let end): end
        case .tornTail(let offset, _, _), .corrupted(let offset, _, _): offset
        }
    }
}

/// A valid record inside a scanned buffer. Only valid while that buffer is.
public struct WALRecordView {
    /// Where the record starts in its segment.
    public let offset: Int
    /// The validated payload.
    public let payload: UnsafeRawBufferPointer

    /// The record's framed size: length, payload, CRC.
    public var encodedSize: Int { WALFormat.headerSize + payload.count + WALFormat.trailerSize }

    /// True for a batch record.
    public var isBatch: Bool { payload[0] == WALOpcode.batch.rawValue }

    /// Calls `body` with each entry in order: its opcode (.set or .delete), key and value bytes.
    /// The payload was validated when the view was made, so this cannot fail.
    public func forEachEntry<E: Error>(
        _ body: (WALOpcode, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        if isBatch {
            let count = Int(payload.loadLittleEndianUInt32(at: 1))
            var offset = WALFormat.batchHeaderSize
            for _ in 0..<count {
                offset = try entry(at: offset, body)
            }
        } else {
            _ = try entry(at: 0, body)
        }
    }

    private func entry<E: Error>(
        at offset: Int,
        _ body: (WALOpcode, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) -> Int {
        let opcode: WALOpcode = payload[offset] == WALOpcode.set.rawValue ? .set : .delete
        let keyLength = Int(payload.loadLittleEndianUInt32(at: offset + 1))
        let valueLength = Int(payload.loadLittleEndianUInt32(at: offset + 5))
        let keyStart = offset + WALFormat.entryHeaderSize
        let valueStart = keyStart + keyLength
        let end = valueStart + valueLength
        try body(
            opcode,
            UnsafeRawBufferPointer(rebasing: payload[keyStart..<valueStart]),
            UnsafeRawBufferPointer(rebasing: payload[valueStart..<end])
        )
        return end
    }

    /// The record's entries as owned values (for tests and tools; replay uses `forEachEntry`).
    public var mutations: [WALMutation] {
        var result: [WALMutation] = []
        forEachEntry { (opcode, key, value) in
            result.append(opcode == .set ? .set(key: Array(key), value: Array(value)) : .delete(key: Array(key)))
        }
        return result
    }
}
