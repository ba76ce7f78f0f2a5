/// The write-ahead log record, in the Go small-db's framing (docs/FORMAT.md):
///
///     u32 payload_len | payload | u32 crc32(payload)
///     payload (set, delete):  u8 op | u32 key_len | u32 value_len | key | value
///     payload (batch, ours):  u8 3  | u32 count   | count × (u8 op | u32 key_len | u32 value_len | key | value)
///
/// All integers little-endian. op 1 = set, 2 = delete (value_len 0), 3 = an atomic batch of sets
/// and deletes: one checksum covers the whole batch, so recovery applies all of it or none.
/// Records of op 1 and 2 are byte-for-byte what the Go version writes and reads.
public enum WALFormat {
    /// Bytes before the payload (its length).
    public static let headerSize = 4
    /// Bytes after the payload (its CRC).
    public static let trailerSize = 4
    /// The largest payload a reader accepts: the Go reader's limit, so every record we write can
    /// be read by both implementations' rules, and a damaged length field can never make a reader
    /// allocate more than this.
    public static let maxPayloadSize = 64 << 20
    /// Bytes of one entry's fixed part: op, key length, value length.
    public static let entryHeaderSize = 9
    /// Bytes of a batch payload's fixed part: op and entry count.
    public static let batchHeaderSize = 5
}

/// What one entry of a record does.
public enum WALOpcode: UInt8, Sendable {
    case set = 1
    case delete = 2
    /// Only as the first byte of a batch payload, never inside a batch.
    case batch = 3
}

/// One change as it is encoded: a set with its value, or a delete.
public enum WALMutation: Sendable, Equatable {
    case set(key: [UInt8], value: [UInt8])
    case delete(key: [UInt8])

    public var key: [UInt8] {
        switch self {
        case .set(let key, _), .delete(let key): key
        }
    }

    /// Bytes this mutation takes inside a payload.
    public var encodedEntrySize: Int {
        switch self {
        case .set(let key, let value): WALFormat.entryHeaderSize + key.count + value.count
        case .delete(let key): WALFormat.entryHeaderSize + key.count
        }
    }
}

/// Appends WAL records to a buffer.
///
/// Two ways in: `append(_:to:)` for owned `WALMutation`s, and the three-step builder
/// (`beginRecord`, `appendEntry`, `finishRecord`) for callers that hold keys and values in their own
/// types and want no intermediate copies (the engine's group committer).
public enum WALEncoder {
    /// The whole framed size of a record holding `mutations` (one mutation: a set or delete record;
    /// several: a batch record).
    public static func recordSize(of mutations: [WALMutation]) -> Int {
        WALFormat.headerSize + payloadSize(of: mutations) + WALFormat.trailerSize
    }

    /// The payload size of a record holding `mutations`.
    public static func payloadSize(of mutations: [WALMutation]) -> Int {
        if mutations.count == 1 { return mutations[0].encodedEntrySize }
        var size = WALFormat.batchHeaderSize
        for mutation in mutations { size += mutation.encodedEntrySize }
        return size
    }

    /// Appends one framed record to `buffer`: a plain set/delete record for a single mutation (the
    /// Go format), a batch record for zero or several. The caller keeps payloads within
    /// `WALFormat.maxPayloadSize` and every key and value under 4 GiB.
    public static func append(_ mutations: [WALMutation], to buffer: inout [UInt8]) {
        let start = beginRecord(in: &buffer, entryCount: mutations.count)
        for mutation in mutations {
            switch mutation {
            case .set(let key, let value):
                key.withUnsafeBytes { key in
                    value.withUnsafeBytes { value in appendEntry(.set, key: key, value: value, to: &buffer) }
                }
            case .delete(let key):
                key.withUnsafeBytes { appendEntry(.delete, key: $0, value: UnsafeRawBufferPointer(start: nil, count: 0), to: &buffer) }
            }
        }
        finishRecord(startingAt: start, in: &buffer)
    }

    /// Starts a record of `entryCount` entries (1: a plain record; otherwise a batch record).
    /// Returns the record's start offset, to pass to `finishRecord`.
    public static func beginRecord(in buffer: inout [UInt8], entryCount: Int) -> Int {
        let start = buffer.count
        buffer.appendLittleEndian(UInt32(0))  // payload length, patched by finishRecord
        if entryCount != 1 {
            buffer.append(WALOpcode.batch.rawValue)
            buffer.appendLittleEndian(UInt32(entryCount))
        }
        return start
    }

    /// Appends one entry. `opcode` is `.set` or `.delete`; a delete's `value` is empty.
    public static func appendEntry(
        _ opcode: WALOpcode, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
        to buffer: inout [UInt8]
    ) {
        buffer.append(opcode.rawValue)
        buffer.appendLittleEndian(UInt32(key.count))
        buffer.appendLittleEndian(UInt32(value.count))
        buffer.append(contentsOf: key)
        buffer.append(contentsOf: value)
    }

    /// Patches the payload length and appends the CRC of the record begun at `start`.
    public static func finishRecord(startingAt start: Int, in buffer: inout [UInt8]) {
        let payloadStart = start + WALFormat.headerSize
        let payloadLength = buffer.count - payloadStart
        buffer.storeLittleEndian(UInt32(payloadLength), at: start)
        let crc = buffer.withUnsafeBytes {
            CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[payloadStart...]))
        }
        buffer.appendLittleEndian(crc)
    }
}
