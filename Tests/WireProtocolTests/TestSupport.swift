// Shared helpers for the WireProtocol tests: a seeded PRNG, a bitwise CRC-32 reference, hand
// framing of WAL records and checkpoints (independent of the code under test), and small adapters
// that turn the reader's borrowed views into owned, comparable values.
import Foundation
import Testing
import WireProtocol

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fully determined by its seed, so every
/// random test reproduces from the seed printed in its failure messages.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &self) }
    }

    /// A key or value drawn from bytes that matter to a binary format: NUL, 0xFF, ASCII, and bytes
    /// that look like opcodes or small lengths.
    mutating func interestingBytes(maxCount: Int) -> [UInt8] {
        let count = Int.random(in: 0...maxCount, using: &self)
        let alphabet: [UInt8] = [0x00, 0xFF, 0x01, 0x02, 0x03, 0x09, 0x61, 0x6B, 0x7F, 0x80]
        return (0..<count).map { _ in
            Bool.random(using: &self)
                ? alphabet[Int.random(in: 0..<alphabet.count, using: &self)]
                : UInt8.random(in: .min ... .max, using: &self)
        }
    }

    mutating func mutation(maxKey: Int = 12, maxValue: Int = 40) -> WALMutation {
        let key = interestingBytes(maxCount: maxKey)
        if Int.random(in: 0..<4, using: &self) == 0 { return .delete(key: key) }
        return .set(key: key, value: interestingBytes(maxCount: maxValue))
    }

    /// The mutations of one record: mostly a single set or delete (a Go-format record), sometimes
    /// a batch of 0...5.
    mutating func record() -> [WALMutation] {
        let count = Int.random(in: 0..<3, using: &self) == 0 ? Int.random(in: 0...5, using: &self) : 1
        return (0..<count).map { _ in mutation() }
    }
}

// MARK: - Reference implementations, written independently of Sources/WireProtocol

/// CRC-32 (IEEE, reflected 0xEDB88320), one bit at a time: slow and obviously right.
func referenceCRC32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
        }
    }
    return ~crc
}

func le32(_ value: UInt32) -> [UInt8] {
    [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
}

func le64(_ value: UInt64) -> [UInt8] {
    le32(UInt32(value & 0xFFFF_FFFF)) + le32(UInt32(value >> 32))
}

func readLE32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
        | UInt32(bytes[offset + 3]) << 24
}

/// One entry of a WAL payload, by hand. The lengths default to the true ones; pass others to lie.
func walEntry(
    op: UInt8, key: [UInt8], value: [UInt8] = [], keyLength: UInt32? = nil, valueLength: UInt32? = nil
) -> [UInt8] {
    [op] + le32(keyLength ?? UInt32(key.count)) + le32(valueLength ?? UInt32(value.count)) + key + value
}

/// A batch payload by hand: op 3, count (the true one unless given), then the entries.
func walBatchPayload(_ entries: [[UInt8]], count: UInt32? = nil) -> [UInt8] {
    [WALOpcode.batch.rawValue] + le32(count ?? UInt32(entries.count)) + entries.flatMap { $0 }
}

/// Frames any payload as a WAL record: u32 length | payload | u32 CRC. The CRC is the correct one
/// (from the reference implementation) unless given, so a malformed payload can pass the checksum.
func walFrame(_ payload: [UInt8], length: UInt32? = nil, crc: UInt32? = nil) -> [UInt8] {
    le32(length ?? UInt32(payload.count)) + payload + le32(crc ?? referenceCRC32(payload))
}

/// Encodes records with the code under test; returns the bytes and each record's start offset.
func encodeRecords(_ records: [[WALMutation]]) -> (bytes: [UInt8], offsets: [Int]) {
    var bytes: [UInt8] = []
    var offsets: [Int] = []
    for record in records {
        offsets.append(bytes.count)
        WALEncoder.append(record, to: &bytes)
    }
    return (bytes, offsets)
}

// MARK: - Owned views of what the reader returns

/// A record delivered by the reader, copied out of the borrowed buffer.
struct DecodedRecord: Equatable, CustomStringConvertible {
    let offset: Int
    let encodedSize: Int
    let isBatch: Bool
    let payload: [UInt8]
    let mutations: [WALMutation]

    init(_ view: WALRecordView) {
        offset = view.offset
        encodedSize = view.encodedSize
        isBatch = view.isBatch
        payload = Array(view.payload)
        mutations = view.mutations
    }

    var description: String { "record@\(offset)(\(encodedSize) bytes, \(mutations.count) entries)" }
}

enum DecodeOutcome: Equatable {
    case record(DecodedRecord)
    case damaged(WALDamage)

    var damage: WALDamage? {
        if case .damaged(let damage) = self { return damage }
        return nil
    }
}

func decodeRecord(_ bytes: [UInt8], at offset: Int) -> DecodeOutcome {
    bytes.withUnsafeBytes { raw in
        switch WALSegmentReader.decodeRecord(in: raw, at: offset) {
        case .record(let view): .record(DecodedRecord(view))
        case .damaged(let damage): .damaged(damage)
        }
    }
}

func scanSegment(_ bytes: [UInt8]) -> (records: [DecodedRecord], result: WALScanResult) {
    var records: [DecodedRecord] = []
    let result = bytes.withUnsafeBytes { raw in
        WALSegmentReader.scan(raw) { view in records.append(DecodedRecord(view)) }
    }
    return (records, result)
}

extension WALDamage {
    var isMalformedPayload: Bool {
        if case .malformedPayload = self { return true }
        return false
    }
}

// MARK: - Checkpoints

struct CheckpointEntry: Equatable, CustomStringConvertible {
    let key: [UInt8]
    let value: [UInt8]

    init(_ key: [UInt8], _ value: [UInt8]) {
        self.key = key
        self.value = value
    }

    var description: String { "\(key) => \(value.count) bytes" }
}

/// Reads a checkpoint with the code under test and returns owned entries.
func readCheckpoint(
    _ bytes: [UInt8], expectedGeneration: UInt64? = nil
) throws -> (header: CheckpointHeader, entries: [CheckpointEntry]) {
    let result = try CheckpointReader.readAll(bytes, expectedGeneration: expectedGeneration)
    return (result.header, result.entries.map { CheckpointEntry($0.key, $0.value) })
}

/// Writes a version 2 checkpoint with `CheckpointWriter`, taking the buffer after each entry index
/// in `takeAfter` (-1: right after the header), and returns the concatenated file.
func writeCheckpoint(generation: UInt64, entries: [CheckpointEntry], takeAfter: Set<Int> = []) -> [UInt8] {
    var writer = CheckpointWriter(generation: generation, entryCount: UInt64(entries.count), layout: .unrevised, bufferCapacity: 64)
    var file: [UInt8] = []
    if takeAfter.contains(-1) { file += writer.takeBuffered() }
    for (index, entry) in entries.enumerated() {
        entry.key.withUnsafeBytes { key in
            entry.value.withUnsafeBytes { value in writer.append(key: key, value: value) }
        }
        if takeAfter.contains(index) { file += writer.takeBuffered() }
    }
    file += writer.finish()
    return file
}

/// The entries part of a checkpoint, by hand: u32 key_len | u32 value_len | key | value.
func checkpointEntryBytes(_ entries: [CheckpointEntry]) -> [UInt8] {
    entries.flatMap { le32(UInt32($0.key.count)) + le32(UInt32($0.value.count)) + $0.key + $0.value }
}

/// A version 1 (Go) checkpoint by hand, with optional trailing bytes.
func handBuiltV1Checkpoint(
    generation: UInt64, entries: [CheckpointEntry], count: UInt32? = nil, trailing: [UInt8] = []
) -> [UInt8] {
    CheckpointFormat.magic + le32(1) + le64(generation) + le32(count ?? UInt32(entries.count))
        + checkpointEntryBytes(entries) + trailing
}

/// A version 2 checkpoint by hand from a header count and raw entry bytes, with a correct CRC
/// (so structural damage can be tested behind a valid checksum).
func handBuiltV2Checkpoint(generation: UInt64, count: UInt64, body: [UInt8]) -> [UInt8] {
    let withoutCRC = CheckpointFormat.magic + le32(2) + le64(generation) + le64(count) + body
    return withoutCRC + le32(referenceCRC32(withoutCRC))
}

/// Replaces the trailing CRC of a version 2 checkpoint with the correct one for its other bytes.
func resealV2(_ bytes: [UInt8]) -> [UInt8] {
    let body = Array(bytes.dropLast(4))
    return body + le32(referenceCRC32(body))
}

// MARK: - Go fixtures (read only)

enum GoFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("StorageEngineTests/Fixtures/go-small-db")

    static func bytes(_ relativePath: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(relativePath)))
    }
}
