// What the differential targets parse their input with: a tiny grammar reads the fuzz input front
// to back, so every input means something (an input never fails to parse).

/// Reads the input front to back; past its end every byte is zero.
public struct ByteReader {
    public let bytes: UnsafeBufferPointer<UInt8>
    public private(set) var offset = 0

    public init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        let available = max(0, min(count, bytes.count - offset))
        var result = Array(bytes[offset..<(offset + available)])
        offset += available
        if available < count { result += repeatElement(0, count: count - available) }
        return result
    }

    /// A little-endian u64 from the next 8 bytes.
    public mutating func uint64() -> UInt64 {
        (0..<8).reduce(UInt64(0)) { value, index in value | UInt64(byte()) << (8 * UInt64(index)) }
    }
}
