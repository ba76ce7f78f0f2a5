/// A value's bytes as the map holds them: one heap object with a 4-byte length and the bytes.
///
/// Why not `[UInt8]`: an array's header is 32 bytes (object header, count, capacity), which puts a
/// 100-byte value in a 144-byte malloc chunk; this header is 20 bytes, which puts it in 128. At a
/// million keys that is 16 MB.
///
/// `@unchecked Sendable`: the bytes are written once, in `init`, before the buffer is reachable
/// from anywhere else, and never mutated afterwards; an immutable buffer is safe to share.
/// (`ManagedBuffer` itself is declared non-Sendable because it is mutable in general.)
///
/// Public for servers that stream a large value (`Database.storedValue(for:)`): a copy of this
/// struct is a retained reference to the same immutable bytes. What must stay true for that:
/// nothing writes into a buffer after `init`; a later write of the key stores a new
/// `StoredValue` (`OrderedMap.set` replaces it), so a reference handed out keeps the old bytes
/// alive and unchanged until it is dropped.
public struct StoredValue: @unchecked Sendable {
    private let buffer: StoredValueBuffer

    /// A stored copy of `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) {
        let buffer = StoredValueBuffer.create(minimumCapacity: bytes.count) { _ in UInt32(bytes.count) }
        buffer.withUnsafeMutablePointerToElements { elements in
            if let source = bytes.baseAddress {
                UnsafeMutableRawPointer(elements).copyMemory(from: source, byteCount: bytes.count)
            }
        }
        self.buffer = unsafeDowncast(buffer, to: StoredValueBuffer.self)
    }

    init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { StoredValue($0) }
    }

    /// (Through the header pointer rather than `buffer.header`: the property would pay for a
    /// dynamic exclusivity check on every read.)
    public var count: Int { buffer.withUnsafeMutablePointerToHeader { Int($0.pointee) } }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutablePointers { header, elements in
            try body(UnsafeRawBufferPointer(start: elements, count: Int(header.pointee)))
        }
    }

    /// A copy of the bytes, as the public API returns them.
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}

/// The heap object behind `StoredValue`: header = byte count, elements = the bytes.
final class StoredValueBuffer: ManagedBuffer<UInt32, UInt8> {}
