/// The replication protocol between a primary and its backup: the values its frames carry.
///
/// Every frame on the wire is
///
///     u8 type | u32 payload_len | payload | u32 crc32(type, payload_len and payload)
///
/// All integers little-endian. The payloads, by type:
///
///     1 hello           u32 magic "SBDR" | u16 version | u64 epoch | u8 has_lineage | 16 lineage
///                       (zeros when has_lineage is 0) | u64 generation | u64 offset | u32 prefix_crc
///                       | u8 has_epoch_start | u64 generation | u64 offset (zeros without one)
///     2 welcome         u64 epoch | 16 lineage | u8 mode | u32 count | count × (u64 epoch | u64 generation | u64 offset)
///     3 refuse          u8 code | u32 message_len | message (UTF-8)
///     4 snapshotBegin   u64 generation | u64 total_bytes
///     5 snapshotChunk   the bytes (the rest of the payload)
///     6 snapshotEnd     u32 crc32 of every chunk byte
///     7 records         u64 generation | u64 offset | the framed WAL records (the rest of the payload)
///     8 startSegment    u64 generation
///     9 heartbeat       u64 epoch | u64 generation | u64 offset
///    10 ack             u64 generation | u64 offset
///    11 authChallenge   u32 magic "SBDR" | 32 nonce (backup → primary: the first frame when a token is set)
///    12 authResponse    32 nonce | 32 proof (primary → backup)
///    13 authProof       32 proof (backup → primary)
///
/// The authentication exchange (`ReplicationAuthentication`, in Replication) comes before the
/// hello when both sides have a token; a proof is HMAC-SHA-256(token, label | backup nonce |
/// primary nonce), with a label of its own for each side.
///
/// The hello starts with the magic and the version so that a peer speaking anything else (an HTTP
/// request, a port scanner, an older or newer small-db) is told apart at the first frame. Every
/// value has exactly one encoding: a decoder refuses trailing bytes, unknown enum values, a
/// lineage flag other than 0 or 1, and non-zero lineage bytes behind a 0 flag.
public enum ReplicationProtocol {
    /// The version this build speaks. A hello of another version is refused by the decoder with
    /// `.unsupportedVersion` (the primary then answers with a `.refuse(.unsupportedVersion)`).
    public static let version: UInt16 = 1
    /// The first four payload bytes of a hello: "SBDR" on the wire.
    public static let magic: UInt32 = 0x5244_4253
    /// The largest payload of any frame: one whole maximal WAL record plus room for the records
    /// frame's position, so a records frame can always carry any record the log can hold.
    public static let maxPayloadSize = WALFormat.maxPayloadSize + 1024
    /// Bytes before a payload: the type and the payload length.
    public static let frameHeaderSize = 5
    /// Bytes after a payload: the CRC.
    public static let frameTrailerSize = 4
    /// Bytes of a records frame's payload before the records (its position).
    public static let recordsHeaderSize = 16
    /// The most WAL bytes one records frame may carry.
    public static let maxRecordBytesPerFrame = maxPayloadSize - recordsHeaderSize
    /// The largest payload of any frame a primary receives: a hello (≤ 1,024 bytes), a refusal
    /// (≤ 1,029), the authentication frames and acks. A primary's connections decode with this
    /// limit, so a peer can make it buffer no more than this per connection.
    public static let maxPayloadSizeToPrimary = ReplicationFrameType.refuseFixedSize + Refusal.maxMessageBytes
    /// The largest payload a backup accepts before the primary's welcome: a welcome with a
    /// history of 2,000 epochs, or a refusal.
    public static let maxPayloadSizeBeforeWelcome = ReplicationFrameType.welcomeFixedSize + 2000 * ReplicationFrameType.epochStartSize
    /// Bytes of an authentication nonce, and of a proof (an HMAC-SHA-256).
    public static let nonceSize = 32
    public static let proofSize = 32
}

/// A place in a primary's log: a segment (logfile.`generation`) and a byte offset in it. The same
/// meaning as the engine's `LogPosition`, in the protocol's fixed-width types.
public struct ReplicationPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var generation: UInt64
    public var offset: UInt64

    public init(generation: UInt64, offset: UInt64) {
        self.generation = generation
        self.offset = offset
    }

    public static func < (lhs: ReplicationPosition, rhs: ReplicationPosition) -> Bool {
        (lhs.generation, lhs.offset) < (rhs.generation, rhs.offset)
    }

    public var description: String { "logfile.\(generation)@\(offset)" }
}

/// Epoch `epoch` began at `start`: where its first record was written on the primary that
/// started it. Everything a directory holds before `start` belongs to earlier epochs.
public struct EpochStart: Sendable, Hashable, CustomStringConvertible {
    public var epoch: UInt64
    public var start: ReplicationPosition

    public init(epoch: UInt64, start: ReplicationPosition) {
        self.epoch = epoch
        self.start = start
    }

    public var description: String { "epoch \(epoch) from \(start)" }
}

/// 16 random bytes naming a family of data directories that descend from one another (a backup
/// made from a primary inherits its lineage). Two directories of different lineages never
/// exchange log records, whatever their positions say.
public struct Lineage: Sendable, Hashable, CustomStringConvertible {
    /// The first eight bytes, read big-endian (so `description` shows the bytes in order).
    public var high: UInt64
    /// The last eight bytes, read big-endian.
    public var low: UInt64

    public static let byteCount = 16

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Nil unless `bytes` holds exactly 16 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Lineage.byteCount else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> Lineage {
        Lineage(high: generator.next(), low: generator.next())
    }

    /// A new lineage from the system's random source.
    public static func random() -> Lineage {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// The 16 bytes, as they are stored and sent.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Lineage.byteCount)
        appendBytes(to: &bytes)
        return bytes
    }

    func appendBytes(to buffer: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { buffer.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { buffer.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
    }

    /// 32 lowercase hex digits.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(32)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// One protocol message. A session: the backup sends `hello`; the primary answers `welcome` (or
/// `refuse` and closes); in snapshot mode it sends `snapshotBegin`, chunks and `snapshotEnd`; then
/// `records`, `startSegment` and `heartbeat` frames in log order, while the backup sends `ack`s.
public enum ReplicationFrame: Sendable, Equatable {
    /// Backup → primary, the first frame of a connection.
    case hello(Hello)
    /// Primary → backup, the answer to a hello it accepts.
    case welcome(Welcome)
    /// Either side, before it closes the connection.
    case refuse(Refusal)
    /// A snapshot follows: checkpoint.`generation`, `totalBytes` long, in chunks.
    case snapshotBegin(generation: UInt64, totalBytes: UInt64)
    /// The next consecutive piece of the checkpoint file.
    case snapshotChunk([UInt8])
    /// The snapshot is complete; `crc32` is the CRC-32 of all its chunk bytes, in order.
    case snapshotEnd(crc32: UInt32)
    /// Framed WAL records, exactly the bytes of logfile.`at.generation` from `at.offset`.
    case records(at: ReplicationPosition, bytes: [UInt8])
    /// The primary started logfile.`generation`: later records go there, from offset 0.
    case startSegment(generation: UInt64)
    /// The primary's epoch and the end of its durable log (sent when idle, so a backup can tell a
    /// quiet primary from a dead one and knows how far behind it is).
    case heartbeat(epoch: UInt64, position: ReplicationPosition)
    /// Backup → primary: every record before this position is durable on the backup.
    case ack(ReplicationPosition)
    /// Backup → primary, the first frame when a token is set: a fresh random nonce
    /// (`ReplicationProtocol.nonceSize` bytes).
    case authChallenge(nonce: [UInt8])
    /// Primary → backup: its own fresh nonce, and its proof over both nonces.
    case authResponse(nonce: [UInt8], proof: [UInt8])
    /// Backup → primary: its proof over both nonces. Only then may it say hello.
    case authProof([UInt8])
}

/// What a backup says about itself when it connects.
public struct Hello: Sendable, Equatable {
    public var protocolVersion: UInt16
    /// The highest epoch the backup has seen.
    public var epoch: UInt64
    /// The backup's lineage; nil for an empty directory that has never held data.
    public var lineage: Lineage?
    /// The end of the backup's durable log.
    public var position: ReplicationPosition
    /// The CRC-32 of the backup's logfile.(position.generation) bytes [0, position.offset): lets
    /// the primary check that the backup's log is a prefix of its own before streaming from it.
    public var prefixCRC: UInt32
    /// Where the backup's epoch began, by its own history (nil when its history has no entry for
    /// it: epoch 0). Two nodes that both hold epoch E agree on their past only if E began at the
    /// same position on both: a primary that finds otherwise resyncs the backup.
    public var epochStart: ReplicationPosition?

    public init(
        protocolVersion: UInt16 = ReplicationProtocol.version, epoch: UInt64, lineage: Lineage?,
        position: ReplicationPosition, prefixCRC: UInt32, epochStart: ReplicationPosition? = nil
    ) {
        self.protocolVersion = protocolVersion
        self.epoch = epoch
        self.lineage = lineage
        self.position = position
        self.prefixCRC = prefixCRC
        self.epochStart = epochStart
    }
}

/// The primary's answer to an accepted hello.
public struct Welcome: Sendable, Equatable {
    public enum Mode: UInt8, Sendable {
        /// Records follow from the backup's position.
        case stream = 0
        /// A snapshot follows, then records from the snapshot's position.
        case snapshot = 1
    }

    public var epoch: UInt64
    public var lineage: Lineage
    /// Every epoch's start, strictly ascending by epoch, none after `epoch`.
    public var history: [EpochStart]
    public var mode: Mode

    public init(epoch: UInt64, lineage: Lineage, history: [EpochStart], mode: Mode) {
        self.epoch = epoch
        self.lineage = lineage
        self.history = history
        self.mode = mode
    }
}

/// Why a side refuses to go on; it closes the connection after sending this.
public struct Refusal: Sendable, Equatable {
    public enum Code: UInt8, Sendable {
        case unsupportedVersion = 1
        /// The peer's epoch is older than ours.
        case staleEpoch = 2
        /// The primary already serves a backup.
        case busy = 3
        /// The node dialled is not (or no longer) a primary.
        case notPrimary = 4
        /// The peer sent a frame that is wrong at this point of the session.
        case protocolViolation = 5
        /// The peer's epoch is newer than ours (we are a deposed primary).
        case newerEpoch = 6
        /// Authentication failed or is missing: a token on one side only, or two different tokens.
        case unauthenticated = 7
    }

    /// The longest message sent, in UTF-8 bytes: a refusal is a diagnostic, not a transfer.
    public static let maxMessageBytes = 1024

    public var code: Code
    /// Human-readable, for logs. At most `maxMessageBytes` of UTF-8 (longer ones are cut at a
    /// character boundary, here and by the encoder).
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = Refusal.truncated(message)
    }

    /// `message` cut to at most `maxMessageBytes` UTF-8 bytes, at a Unicode scalar boundary.
    static func truncated(_ message: String) -> String {
        guard message.utf8.count > maxMessageBytes else { return message }
        var result = ""
        var size = 0
        for scalar in message.unicodeScalars {
            size += UTF8.width(scalar)
            if size > maxMessageBytes { break }
            result.unicodeScalars.append(scalar)
        }
        return result
    }
}

/// Why a byte stream is not a valid sequence of replication frames. A decoder that throws one
/// keeps throwing it: the stream cannot be resynchronised, the connection must be dropped.
public enum ReplicationFrameError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownFrameType(UInt8)
    case payloadTooLarge(size: Int, limit: Int)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    /// A hello that does not start with `ReplicationProtocol.magic`: the peer speaks something else.
    case badMagic
    /// A hello of a protocol version this build does not speak.
    case unsupportedVersion(UInt16)
    /// A payload of the wrong size or with a value out of range.
    case malformed(String)

    public var description: String {
        switch self {
        case .unknownFrameType(let type):
            let ascii = (0x20..<0x7F).contains(type) ? " ('\(Character(Unicode.Scalar(type)))')" : ""
            return "unknown replication frame type \(type)\(ascii): the peer does not speak the replication protocol"
        case .payloadTooLarge(let size, let limit): return "frame payload of \(size) bytes exceeds the limit of \(limit)"
        case .checksumMismatch(let stored, let computed):
            return "frame checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))"
        case .badMagic: return "hello without the replication magic: the peer does not speak the replication protocol"
        case .unsupportedVersion(let version):
            return "replication protocol version \(version) is not supported (this build speaks \(ReplicationProtocol.version))"
        case .malformed(let reason): return "malformed frame: \(reason)"
        }
    }
}

/// The type byte of each frame.
enum ReplicationFrameType: UInt8 {
    case hello = 1
    case welcome = 2
    case refuse = 3
    case snapshotBegin = 4
    case snapshotChunk = 5
    case snapshotEnd = 6
    case records = 7
    case startSegment = 8
    case heartbeat = 9
    case ack = 10
    case authChallenge = 11
    case authResponse = 12
    case authProof = 13

    static let helloVersion1Size = 4 + 2 + 8 + 1 + Lineage.byteCount + 16 + 4
    static let welcomeFixedSize = 8 + Lineage.byteCount + 1 + 4
    static let epochStartSize = 24
    static let refuseFixedSize = 1 + 4

    /// The payload sizes a frame of this type may have, checked as soon as the header arrives so
    /// that a stranger's bytes are refused before the decoder waits for (or buffers) a payload.
    /// A hello may be larger than version 1's so that a newer peer's hello still decodes far
    /// enough to be refused by version.
    var payloadSizes: ClosedRange<Int> {
        switch self {
        case .hello: 6...1024
        case .welcome: Self.welcomeFixedSize...Int.max
        case .refuse: Self.refuseFixedSize...(Self.refuseFixedSize + Refusal.maxMessageBytes)
        case .snapshotBegin: 16...16
        case .snapshotChunk: 0...Int.max
        case .snapshotEnd: 4...4
        case .records: ReplicationProtocol.recordsHeaderSize...Int.max
        case .startSegment: 8...8
        case .heartbeat: 24...24
        case .ack: 16...16
        case .authChallenge: (4 + ReplicationProtocol.nonceSize)...(4 + ReplicationProtocol.nonceSize)
        case .authResponse:
            (ReplicationProtocol.nonceSize + ReplicationProtocol.proofSize)...(ReplicationProtocol.nonceSize + ReplicationProtocol.proofSize)
        case .authProof: ReplicationProtocol.proofSize...ReplicationProtocol.proofSize
        }
    }
}

/// Checks an epoch history: strictly ascending by epoch, none after `current`. Returns the index
/// of the first entry that breaks the rule and why, or nil.
func epochHistoryProblem(_ history: [EpochStart], current: UInt64) -> (index: Int, reason: String)? {
    for (index, entry) in history.enumerated() {
        if entry.epoch > current { return (index, "epoch \(entry.epoch) is after the current epoch \(current)") }
        if index > 0 && entry.epoch <= history[index - 1].epoch {
            return (index, "epoch \(entry.epoch) does not follow epoch \(history[index - 1].epoch)")
        }
    }
    return nil
}
