/// The checkpoint file (checkpoint.N): a full snapshot of the store at one log position.
///
/// Version 1 (the Go small-db; read only):
///
///     8 bytes "SMALLDB\0" | u32 version = 1 | u64 generation | u32 count
///     count × (u32 key_len | u32 value_len | key | value)
///     (anything after the last entry is ignored, as the Go reader does)
///
/// Version 2 (this project before revisions; read only):
///
///     8 bytes "SMALLDB\0" | u32 version = 2 | u64 generation | u64 count
///     count × (u32 key_len | u32 value_len | key | value)
///     u32 crc32 of every byte before it
///
/// Version 3 (what this project writes):
///
///     8 bytes "SMALLDB\0" | u32 version = 3 | u64 generation | u64 count | u64 revision
///     count × (u32 key_len | u32 value_len | u64 create_revision | u64 mod_revision | key | value)
///     u32 crc32 of every byte before it
///
/// `revision` is the store's revision at the snapshot; the entries are in strictly ascending
/// unsigned-byte order of their keys, and 1 <= create_revision <= mod_revision <= revision for
/// each (checked on load: a file that breaks them is refused). Versions 2 and 3 end exactly after
/// their CRC: a flipped bit anywhere, a missing or an extra byte, is detected and the file is
/// refused. All integers little-endian. A build that knows only versions 1 and 2 refuses a
/// version 3 file ("unsupported checkpoint format version 3"): it never misreads one.
public enum CheckpointFormat {
    public static let magic: [UInt8] = Array("SMALLDB\0".utf8)
    /// The version this project writes.
    public static let currentVersion: UInt32 = 3
    /// This project's version before revisions: a checksum, no revisions.
    public static let unrevisedVersion: UInt32 = 2
    /// The Go small-db's version: no checksum.
    public static let goVersion: UInt32 = 1
    static let entryHeaderSize = 8
    static let revisedEntryHeaderSize = 24
    static let v1HeaderSize = 8 + 4 + 8 + 4
    static let v2HeaderSize = 8 + 4 + 8 + 8
    static let v3HeaderSize = 8 + 4 + 8 + 8 + 8
    static let trailerSize = 4
    /// The longest header (version 3's): what `CheckpointReader.header(ofPrefix:…)` needs.
    public static let maxHeaderSize = v3HeaderSize
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
    /// The store's revision at the snapshot (version 3; 0 for older versions).
    public let revision: UInt64

    /// Whether the file ends in a CRC of everything before it (versions 2 and 3).
    public var hasChecksum: Bool { version != CheckpointFormat.goVersion }
    /// Whether entries carry their revisions (version 3).
    public var hasRevisions: Bool { version == CheckpointFormat.currentVersion }
    /// Bytes of an entry's fixed part.
    var entryHeaderSize: Int { hasRevisions ? CheckpointFormat.revisedEntryHeaderSize : CheckpointFormat.entryHeaderSize }
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
    case keysOutOfOrder(index: UInt64)
    case badRevision(index: UInt64, create: UInt64, mod: UInt64, store: UInt64)

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
        case .keysOutOfOrder(let index): "entry \(index)'s key does not sort after the one before it"
        case .badRevision(let index, let create, let mod, let store):
            "entry \(index) has create revision \(create) and mod revision \(mod), outside 1 ≤ create ≤ mod ≤ \(store) (the store's revision)"
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
                entriesStart: CheckpointFormat.v1HeaderSize, entriesLimit: fileSize, revision: 0)
        case CheckpointFormat.unrevisedVersion, CheckpointFormat.currentVersion:
            let headerSize = version == CheckpointFormat.currentVersion ? CheckpointFormat.v3HeaderSize : CheckpointFormat.v2HeaderSize
            guard fileSize >= headerSize + CheckpointFormat.trailerSize, bytes.count >= headerSize else { throw .tooShort(fileSize) }
            header = CheckpointHeader(
                version: version, generation: generation,
                entryCount: bytes.loadLittleEndianUInt64(at: 20),
                entriesStart: headerSize,
                entriesLimit: fileSize - CheckpointFormat.trailerSize,
                revision: version == CheckpointFormat.currentVersion ? bytes.loadLittleEndianUInt64(at: 28) : 0)
        default:
            throw .unsupportedVersion(version)
        }
        if let expectedGeneration, expectedGeneration != generation {
            throw .generationMismatch(expected: expectedGeneration, found: generation)
        }
        return header
    }

    /// Checks a version 2 or 3 file's CRC (version 1 has none: it always passes).
    public static func verifyChecksum(
        of bytes: UnsafeRawBufferPointer, header: CheckpointHeader
    ) throws(CheckpointError) {
        guard header.hasChecksum else { return }
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
        try forEachEntryWithRevisions(of: bytes, header: header) { key, value, _ in try body(key, value) }
    }

    /// Calls `body` with each entry's key, value and revisions (zeros before version 3), in file
    /// order, checking version 3's order and revision rules. Structure errors throw
    /// `CheckpointError`; `body`'s own errors pass through.
    public static func forEachEntryWithRevisions(
        of bytes: UnsafeRawBufferPointer, header: CheckpointHeader,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, CheckpointRevisions) throws -> Void
    ) throws {
        var offset = header.entriesStart
        let limit = header.entriesLimit
        let entryHeaderSize = header.entryHeaderSize
        var index: UInt64 = 0
        var previousKey: UnsafeRawBufferPointer?
        while index < header.entryCount {
            guard limit - offset >= entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            let keyLength = Int(bytes.loadLittleEndianUInt32(at: offset))
            let valueLength = Int(bytes.loadLittleEndianUInt32(at: offset + 4))
            let keyStart = offset + entryHeaderSize
            guard keyLength <= limit - keyStart, valueLength <= limit - keyStart - keyLength else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            var revisions = CheckpointRevisions(create: 0, mod: 0)
            let key = UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(keyStart + keyLength)])
            if header.hasRevisions {
                revisions = CheckpointRevisions(
                    create: bytes.loadLittleEndianUInt64(at: offset + 8), mod: bytes.loadLittleEndianUInt64(at: offset + 16))
                try revisions.check(index: index, header: header)
                if let previousKey, !CheckpointRevisions.ascending(previousKey, key) {
                    throw CheckpointError.keysOutOfOrder(index: index)
                }
                previousKey = key
            }
            let valueStart = keyStart + keyLength
            offset = valueStart + valueLength
            try body(key, UnsafeRawBufferPointer(rebasing: bytes[valueStart..<offset]), revisions)
            index += 1
        }
        if header.hasChecksum && offset != limit {
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

/// An entry's revisions in a version 3 checkpoint (zeros in older versions).
public struct CheckpointRevisions: Sendable, Equatable {
    public var create: UInt64
    public var mod: UInt64

    public init(create: UInt64, mod: UInt64) {
        self.create = create
        self.mod = mod
    }

    /// Version 3's rule: 1 <= create <= mod <= the store's revision.
    func check(index: UInt64, header: CheckpointHeader) throws(CheckpointError) {
        guard create >= 1, create <= mod, mod <= header.revision else {
            throw .badRevision(index: index, create: create, mod: mod, store: header.revision)
        }
    }

    /// Whether `left` sorts strictly before `right` (unsigned bytes, a prefix first).
    static func ascending(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        let common = min(left.count, right.count)
        for index in 0..<common where left[index] != right[index] { return left[index] < right[index] }
        return left.count < right.count
    }
}

/// Writes a version 3 checkpoint in pieces, so a snapshot of any size streams to disk through a
/// bounded buffer. Use: `init`, `append` each entry in ascending key order, `finish`; hand
/// `takeBuffered()` to the file whenever `bufferedCount` grows large. The entry count is fixed up
/// front and checked at the end.
public struct CheckpointWriter {
    public private(set) var buffer: [UInt8] = []
    private var crc = CRC32()
    private let expectedCount: UInt64
    private let revision: UInt64
    private let layout: Layout
    private var writtenCount: UInt64 = 0

    /// Which version to write.
    public enum Layout: Sendable {
        /// Version 3, with revisions: what the engine writes.
        case revised
        /// Version 2, without revisions: for tests and tools that need the older format.
        case unrevised
    }

    /// `revision` is the store's revision at the snapshot (version 3 only). Without one, every
    /// key is written as created and last modified at revision 1 (tests and tools that have no
    /// revisions of their own).
    public init(
        generation: UInt64, entryCount: UInt64, revision: UInt64 = 1, layout: Layout = .revised,
        bufferCapacity: Int = 1 << 20
    ) {
        expectedCount = entryCount
        self.revision = revision
        self.layout = layout
        buffer.reserveCapacity(bufferCapacity)
        buffer.append(contentsOf: CheckpointFormat.magic)
        buffer.appendLittleEndian(layout == .revised ? CheckpointFormat.currentVersion : CheckpointFormat.unrevisedVersion)
        buffer.appendLittleEndian(generation)
        buffer.appendLittleEndian(entryCount)
        if layout == .revised { buffer.appendLittleEndian(revision) }
    }

    public var bufferedCount: Int { buffer.count }

    public mutating func append(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, revisions: CheckpointRevisions) {
        buffer.appendLittleEndian(UInt32(key.count))
        buffer.appendLittleEndian(UInt32(value.count))
        if layout == .revised {
            buffer.appendLittleEndian(revisions.create)
            buffer.appendLittleEndian(revisions.mod)
        }
        buffer.append(contentsOf: key)
        buffer.append(contentsOf: value)
        writtenCount += 1
    }

    /// Appends an entry created and last modified at the store's revision (or 1, if that is 0).
    public mutating func append(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let at = max(1, revision)
        append(key: key, value: value, revisions: CheckpointRevisions(create: at, mod: at))
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
