/// The replication state file (`replication` in a data directory): which family of directories
/// this one belongs to, the highest epoch it has seen, and where each epoch began.
///
///     8 bytes "SDBREPL\0" | u32 version = 1 | 16 lineage | u64 epoch | u8 role | u32 count
///     count × (u64 epoch | u64 generation | u64 offset)
///     u32 crc32 of every byte before it
///
/// All integers little-endian. The file ends exactly after its CRC, and the count must match the
/// bytes present: a flipped bit, a missing or an extra byte is refused, never half-read. The
/// history is strictly ascending by epoch and no entry is after the current epoch (a directory
/// cannot know where a future epoch begins).
public enum ReplicationStateFormat {
    /// The file's name in a data directory.
    public static let fileName = "replication"
    public static let magic: [UInt8] = Array("SDBREPL\0".utf8)
    public static let currentVersion: UInt32 = 1
    static let headerSize = 8 + 4 + Lineage.byteCount + 8 + 1 + 4
    static let entrySize = 24
    static let trailerSize = 4
}

/// What the replication state file holds.
public struct ReplicationState: Sendable, Equatable {
    /// The side a directory was last on.
    public enum Role: UInt8, Sendable {
        case primary = 0
        case backup = 1
    }

    public var lineage: Lineage
    /// The highest epoch this directory has seen (as primary or from a primary).
    public var epoch: UInt64
    /// Where each known epoch began, ascending by epoch.
    public var history: [EpochStart]
    /// The role the directory was last used in: a backup's directory started as a primary takes
    /// a new epoch (it is a promotion), so that its new writes are never mistaken for the epoch
    /// it followed.
    public var role: Role

    public init(lineage: Lineage, epoch: UInt64, history: [EpochStart], role: Role = .primary) {
        self.lineage = lineage
        self.epoch = epoch
        self.history = history
        self.role = role
    }

    /// Throws unless the history is strictly ascending by epoch with no entry after `epoch`.
    public func validate() throws(ReplicationStateError) {
        if let problem = epochHistoryProblem(history, current: epoch) {
            throw .invalidHistory(index: problem.index, reason: problem.reason)
        }
    }
}

/// Why a replication state file was refused.
public enum ReplicationStateError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case badMagic
    case unsupportedVersion(UInt32)
    /// The count says `expected` bytes in all, the file has `actual`.
    case lengthMismatch(expected: Int, actual: Int)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case invalidHistory(index: Int, reason: String)
    case unknownRole(UInt8)

    public var description: String {
        switch self {
        case .tooShort(let size): "replication state file is \(size) bytes, too short for its header"
        case .badMagic: "not a replication state file (bad magic bytes)"
        case .unsupportedVersion(let version): "unsupported replication state format version \(version)"
        case .lengthMismatch(let expected, let actual):
            "replication state file is \(actual) bytes, its entry count says \(expected): the file is damaged"
        case .checksumMismatch(let stored, let computed):
            "replication state checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))): the file is damaged"
        case .invalidHistory(let index, let reason): "replication state history entry \(index): \(reason)"
        case .unknownRole(let byte): "replication state role \(byte) is neither 0 (primary) nor 1 (backup)"
        }
    }
}

public enum ReplicationStateCodec {
    /// The file's bytes. Writes `state` as given; `decode` is what checks the history, so a caller
    /// should `validate()` a state it built before writing it.
    public static func encode(_ state: ReplicationState) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            ReplicationStateFormat.headerSize + state.history.count * ReplicationStateFormat.entrySize
                + ReplicationStateFormat.trailerSize)
        bytes.append(contentsOf: ReplicationStateFormat.magic)
        bytes.appendLittleEndian(ReplicationStateFormat.currentVersion)
        state.lineage.appendBytes(to: &bytes)
        bytes.appendLittleEndian(state.epoch)
        bytes.append(state.role.rawValue)
        bytes.appendLittleEndian(UInt32(state.history.count))
        for entry in state.history {
            bytes.appendLittleEndian(entry.epoch)
            bytes.appendLittleEndian(entry.start.generation)
            bytes.appendLittleEndian(entry.start.offset)
        }
        bytes.appendLittleEndian(CRC32.checksum(bytes))
        return bytes
    }

    /// Parses and checks a whole file: magic, version, exact length, CRC, then the history rules.
    public static func decode(_ bytes: [UInt8]) throws(ReplicationStateError) -> ReplicationState {
        let outcome = bytes.withUnsafeBytes { raw in
            Result { () throws(ReplicationStateError) in try decode(raw) }
        }
        return try outcome.get()
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(ReplicationStateError) -> ReplicationState {
        let headerSize = ReplicationStateFormat.headerSize
        let trailerSize = ReplicationStateFormat.trailerSize
        guard bytes.count >= headerSize + trailerSize else { throw .tooShort(bytes.count) }
        guard bytes[0..<8].elementsEqual(ReplicationStateFormat.magic) else { throw .badMagic }
        let version = bytes.loadLittleEndianUInt32(at: 8)
        guard version == ReplicationStateFormat.currentVersion else { throw .unsupportedVersion(version) }
        let count = Int(bytes.loadLittleEndianUInt32(at: headerSize - 4))
        // The count is at most 2^32 - 1, so this cannot overflow on a 64-bit platform.
        let expected = headerSize + count * ReplicationStateFormat.entrySize + trailerSize
        guard expected == bytes.count else { throw .lengthMismatch(expected: expected, actual: bytes.count) }
        let stored = bytes.loadLittleEndianUInt32(at: bytes.count - trailerSize)
        let computed = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - trailerSize)]))
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        let lineage = Lineage(bytes: bytes[12..<28]) ?? Lineage(high: 0, low: 0)
        let epoch = bytes.loadLittleEndianUInt64(at: 28)
        guard let role = ReplicationState.Role(rawValue: bytes[36]) else { throw .unknownRole(bytes[36]) }
        var history: [EpochStart] = []
        history.reserveCapacity(count)
        var offset = headerSize
        for _ in 0..<count {
            history.append(EpochStart(
                epoch: bytes.loadLittleEndianUInt64(at: offset),
                start: ReplicationPosition(
                    generation: bytes.loadLittleEndianUInt64(at: offset + 8),
                    offset: bytes.loadLittleEndianUInt64(at: offset + 16))))
            offset += ReplicationStateFormat.entrySize
        }
        let state = ReplicationState(lineage: lineage, epoch: epoch, history: history, role: role)
        try state.validate()
        return state
    }
}
