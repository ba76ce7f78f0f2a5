/// Little-endian integer encoding, the byte order of every format this project reads or writes.

extension Array where Element == UInt8 {
    /// Appends `value` as four little-endian bytes.
    @inlinable
    public mutating func appendLittleEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 24))
    }

    /// Appends `value` as eight little-endian bytes.
    @inlinable
    public mutating func appendLittleEndian(_ value: UInt64) {
        appendLittleEndian(UInt32(truncatingIfNeeded: value))
        appendLittleEndian(UInt32(truncatingIfNeeded: value >> 32))
    }

    /// Overwrites four bytes at `offset` with `value`, little-endian. `offset + 4 <= count`.
    @inlinable
    public mutating func storeLittleEndian(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }
}

extension UnsafeRawBufferPointer {
    /// The little-endian UInt32 at `offset`. The caller has checked `offset + 4 <= count`.
    @inlinable
    public func loadLittleEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The little-endian UInt64 at `offset`. The caller has checked `offset + 8 <= count`.
    @inlinable
    public func loadLittleEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
