/// The checkpoint file (checkpoint.N): a full snapshot of the store at one log position.
///
/// Version 1 (the Go small-db; read only):
///
///     8 bytes "SMALLDB\0" | u32 version = 1 | u64 generation | u32 count
///     count × (u32 key_len | u32 value_len | key | value)
///     (anything after the last entry is ignored, as the Go reader does)
///
/// Version 2 (what this project writes):
///
///     8 bytes "SMALLDB\0" | u32 version = 2 | u64 generation | u64 count
///     count × (u32 key_len | u32 value_len | key | value)
///     u32 crc32 of every byte before it
///
/// Version 2 ends exactly after its CRC: a flipped bit anywhere, a missing or an extra byte, is
/// detected and the file is refused. All integers little-endian.
public enum CheckpointFormat {
    public static let magic: [UInt8] = Array("SMALLDB\0".utf8)
    /// The version this project writes.
    public static let currentVersion: UInt32 = 2
    /// The Go small-db's version: no checksum.
    public static let goVersion: UInt32 = 1
    static let entryHeaderSize = 8
    static let v1HeaderSize = 8 + 4 + 8 + 4
    static let v2HeaderSize = 8 + 4 + 8 + 8
    static let v2TrailerSize = 4
    /// The longest header (version 2's): what `CheckpointReader.header(ofPrefix:…)` needs.
    public static let maxHeaderSize = v2HeaderSize
}

/// What a checkpoint's header says.
public struct CheckpointHeader: Sendable, Equatable {
    public let version: UInt32
    public let generation: UInt64
    public let entryCount: UInt64
    /// Where the entries start and where they must end (for version 2, where the CRC starts; for
    /// version 1, the end of the file, which may hold ignored trailing bytes).
    public let entriesStart: Int
    public let entriesLimit: Int
}

/// Why a checkpoint was refused.
public enum CheckpointError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case badMagic
    case unsupportedVersion(UInt32)
    case generationMismatch(expected: UInt64, found: UInt64)
    case checksumMismatch(expected: UInt32, computed: UInt32)
    case truncatedEntry(index: UInt64, offset: Int)
    case trailingBytes(offset: Int)

    public var description: String {
        switch self {
        case .tooShort(let size): "file is \(size) bytes, too short for a checkpoint header"
        case .badMagic: "not a checkpoint (bad magic bytes)"
        case .unsupportedVersion(let version): "unsupported checkpoint format version \(version)"
        case .generationMismatch(let expected, let found):
            "header says generation \(found) but the file name says \(expected)"
        case .checksumMismatch(let expected, let computed):
            "checksum mismatch (stored \(hex(expected)), computed \(hex(computed))): the file is damaged"
        case .truncatedEntry(let index, let offset): "entry \(index) at byte \(offset) runs past the end of the entries"
        case .trailingBytes(let offset): "unexpected bytes after the last entry, at byte \(offset)"
        }
    }

    private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}

/// Reads checkpoints of either version. Reading is split in three so a loader can verify the
/// checksum on one core while it parses on another: `header`, `verifyChecksum`, `forEachEntry`.
public enum CheckpointReader {
    /// Parses and checks the header. `expectedGeneration` is the N of the file name.
    public static func header(
        of bytes: UnsafeRawBufferPointer, expectedGeneration: UInt64?
    ) throws(CheckpointError) -> CheckpointHeader {
        try header(ofPrefix: bytes, fileSize: bytes.count, expectedGeneration: expectedGeneration)
    }

    /// The header of a file of `fileSize` bytes from its first bytes (`prefix`: at least
    /// `CheckpointFormat.maxHeaderSize` of them, or the whole file if it is shorter; fewer, as
    /// from a file that shrank, is `tooShort`).
    public static func header(
        ofPrefix bytes: UnsafeRawBufferPointer, fileSize: Int, expectedGeneration: UInt64?
    ) throws(CheckpointError) -> CheckpointHeader {
        guard fileSize >= CheckpointFormat.v1HeaderSize, bytes.count >= CheckpointFormat.v1HeaderSize else {
            throw .tooShort(fileSize)
        }
        guard bytes[0..<8].elementsEqual(CheckpointFormat.magic) else { throw .badMagic }
        let version = bytes.loadLittleEndianUInt32(at: 8)
        let generation = bytes.loadLittleEndianUInt64(at: 12)
        let header: CheckpointHeader
        switch version {
        case CheckpointFormat.goVersion:
            header = CheckpointHeader(
                version: version, generation: generation,
                entryCount: UInt64(bytes.loadLittleEndianUInt32(at: 20)),
                entriesStart: CheckpointFormat.v1HeaderSize, entriesLimit: fileSize)
        case CheckpointFormat.currentVersion:
            let minimum = CheckpointFormat.v2HeaderSize + CheckpointFormat.v2TrailerSize
            guard fileSize >= minimum, bytes.count >= CheckpointFormat.v2HeaderSize else { throw .tooShort(fileSize) }
            header = CheckpointHeader(
                version: version, generation: generation,
                entryCount: bytes.loadLittleEndianUInt64(at: 20),
                entriesStart: CheckpointFormat.v2HeaderSize,
                entriesLimit: fileSize - CheckpointFormat.v2TrailerSize)
        default:
            throw .unsupportedVersion(version)
        }
        if let expectedGeneration, expectedGeneration != generation {
            throw .generationMismatch(expected: expectedGeneration, found: generation)
        }
        return header
    }

    /// Checks a version 2 file's CRC (version 1 has none: it always passes).
    public static func verifyChecksum(
        of bytes: UnsafeRawBufferPointer, header: CheckpointHeader
    ) throws(CheckpointError) {
        guard header.version == CheckpointFormat.currentVersion else { return }
        let stored = bytes.loadLittleEndianUInt32(at: header.entriesLimit)
        let computed = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<header.entriesLimit]))
        guard stored == computed else { throw .checksumMismatch(expected: stored, computed: computed) }
    }

    /// Calls `body` with each entry's key and value, in file order. Structure errors throw
    /// `CheckpointError`; `body`'s own errors pass through.
    public static func forEachEntry(
        of bytes: UnsafeRawBufferPointer, header: CheckpointHeader,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var offset = header.entriesStart
        let limit = header.entriesLimit
        var index: UInt64 = 0
        while index < header.entryCount {
            guard limit - offset >= CheckpointFormat.entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            let keyLength = Int(bytes.loadLittleEndianUInt32(at: offset))
            let valueLength = Int(bytes.loadLittleEndianUInt32(at: offset + 4))
            let keyStart = offset + CheckpointFormat.entryHeaderSize
            guard keyLength <= limit - keyStart, valueLength <= limit - keyStart - keyLength else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            let valueStart = keyStart + keyLength
            offset = valueStart + valueLength
            try body(
                UnsafeRawBufferPointer(rebasing: bytes[keyStart..<valueStart]),
                UnsafeRawBufferPointer(rebasing: bytes[valueStart..<offset]))
            index += 1
        }
        if header.version == CheckpointFormat.currentVersion && offset != limit {
            throw CheckpointError.trailingBytes(offset: offset)
        }
    }

    /// Header, checksum and every entry, in one call (for tests and tools).
    public static func readAll(
        _ bytes: [UInt8], expectedGeneration: UInt64? = nil
    ) throws -> (header: CheckpointHeader, entries: [(key: [UInt8], value: [UInt8])]) {
        try bytes.withUnsafeBytes { raw in
            let header = try header(of: raw, expectedGeneration: expectedGeneration)
            try verifyChecksum(of: raw, header: header)
            var entries: [(key: [UInt8], value: [UInt8])] = []
            try forEachEntry(of: raw, header: header) { key, value in
                entries.append((Array(key), Array(value)))
            }
            return (header, entries)
        }
    }
}

/// Writes a version 2 checkpoint in pieces, so a snapshot of any size streams to disk through a
/// bounded buffer. Use: `init`, `append` each entry, `finish`; hand `takeBuffered()` to the file
/// whenever `bufferedCount` grows large. The entry count is fixed up front and checked at the end.
public struct CheckpointWriter {
    public private(set) var buffer: [UInt8] = []
    private var crc = CRC32()
    private let expectedCount: UInt64
    private var writtenCount: UInt64 = 0

    public init(generation: UInt64, entryCount: UInt64, bufferCapacity: Int = 1 << 20) {
        expectedCount = entryCount
        buffer.reserveCapacity(bufferCapacity)
        buffer.append(contentsOf: CheckpointFormat.magic)
        buffer.appendLittleEndian(CheckpointFormat.currentVersion)
        buffer.appendLittleEndian(generation)
        buffer.appendLittleEndian(entryCount)
    }

    public var bufferedCount: Int { buffer.count }

    public mutating func append(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        buffer.appendLittleEndian(UInt32(key.count))
        buffer.appendLittleEndian(UInt32(value.count))
        buffer.append(contentsOf: key)
        buffer.append(contentsOf: value)
        writtenCount += 1
    }

    /// Returns the buffered bytes and empties the buffer (keeping its capacity).
    public mutating func takeBuffered() -> [UInt8] {
        crc.update(buffer)
        let taken = buffer
        buffer.removeAll(keepingCapacity: true)
        return taken
    }

    /// Appends the trailer; returns the last bytes to write. Precondition: exactly `entryCount`
    /// entries were appended (a mismatch is a bug in the caller, not bad input).
    public mutating func finish() -> [UInt8] {
        precondition(writtenCount == expectedCount, "checkpoint entry count \(writtenCount) != declared \(expectedCount)")
        crc.update(buffer)
        var last = buffer
        last.appendLittleEndian(crc.value)
        buffer.removeAll()
        return last
    }
}
