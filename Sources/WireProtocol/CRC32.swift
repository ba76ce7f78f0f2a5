/// CRC-32 (IEEE 802.3, the zlib polynomial, reflected 0xEDB88320): the checksum of WAL records
/// (the Go small-db's framing) and of this project's checkpoints.
///
/// Slicing-by-8: eight 256-entry tables let the loop consume eight bytes per step, several times
/// faster than the byte-at-a-time loop, which matters when a checkpoint of 100+ MB is verified on
/// open. Incremental: `update` may be called on consecutive pieces of one message.
public struct CRC32: Sendable {
    /// The finished checksum of everything passed to `update` so far.
    public var value: UInt32 { ~state }

    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of `bytes`, in one call.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }

    /// The checksum of `bytes`, in one call.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = state
        var index = 0
        let count = bytes.count
        CRC32Tables.shared.withUnsafeBufferPointer { table in
            // Eight bytes at a time: the first four fold into the running CRC, the next four
            // are looked up directly; table k holds the CRC of a byte followed by k zero bytes.
            while count - index >= 8 {
                let low = UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8
                    | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
                let one = crc ^ low
                crc = table[7 &* 256 &+ Int(one & 0xFF)]
                    ^ table[6 &* 256 &+ Int((one >> 8) & 0xFF)]
                    ^ table[5 &* 256 &+ Int((one >> 16) & 0xFF)]
                    ^ table[4 &* 256 &+ Int(one >> 24)]
                    ^ table[3 &* 256 &+ Int(bytes[index + 4])]
                    ^ table[2 &* 256 &+ Int(bytes[index + 5])]
                    ^ table[1 &* 256 &+ Int(bytes[index + 6])]
                    ^ table[Int(bytes[index + 7])]
                index &+= 8
            }
            while index < count {
                crc = table[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index &+= 1
            }
        }
        state = crc
    }
}

/// The slicing-by-8 lookup tables, 8 × 256 entries, built once.
enum CRC32Tables {
    static let shared: [UInt32] = {
        let polynomial: UInt32 = 0xEDB8_8320
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            table[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(slice - 1) * 256 + byte]
                table[slice * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return table
    }()
}
