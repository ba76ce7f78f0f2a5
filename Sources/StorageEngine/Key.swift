/// A key: arbitrary bytes (not necessarily UTF-8), compared and hashed byte for byte.
///
/// Keys of up to 15 bytes are stored inline, in two machine words, with no heap allocation: the
/// common case (short identifiers) then costs no allocation, no reference counting, and hashes as
/// two integers. Longer keys keep their bytes in an array.
///
/// Invariant: a key of 15 bytes or fewer is always `.inline` and its unused inline bytes are zero,
/// so equal keys have equal representations and `==`/`hash(into:)` can compare words directly.
public struct Key: Sendable, Hashable, Comparable {
    @usableFromInline
    enum Storage: Sendable, Hashable {
        /// Bytes 0–7 in `low`, 8–14 in the low 7 bytes of `high`, the length in `high`'s top byte.
        case inline(low: UInt64, high: UInt64)
        case heap([UInt8])
    }

    /// Keys up to this length are stored inline.
    public static let inlineCapacity = 15

    @usableFromInline
    let storage: Storage

    /// A key with a copy of `bytes`.
    public init(bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= Key.inlineCapacity else {
            storage = .heap(Array(bytes))
            return
        }
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            raw.copyMemory(from: bytes)
            raw[15] = UInt8(bytes.count)
        }
        storage = .inline(low: words.0, high: words.1)
    }

    /// A key with a copy of `bytes`.
    public init(_ bytes: some Sequence<UInt8>) {
        let array = Array(bytes)
        self = array.withUnsafeBytes { Key(bytes: $0) }
    }

    /// A key holding the UTF-8 bytes of `string`.
    public init(_ string: String) {
        var string = string
        self = string.withUTF8 { Key(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The number of bytes in the key.
    public var count: Int {
        switch storage {
        case .inline(_, let high): Int(high >> 56)
        case .heap(let bytes): bytes.count
        }
    }

    /// True for the empty key (which the database refuses).
    public var isEmpty: Bool { count == 0 }

    /// The key's bytes, copied into an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the key's bytes, without copying them to the heap.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .inline(let low, let high):
            let words = (low, high)
            let count = Int(high >> 56)
            return try Swift.withUnsafeBytes(of: words) { raw in
                try body(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
        case .heap(let bytes):
            return try bytes.withUnsafeBytes(body)
        }
    }

    /// A cheap, well-mixed hash for choosing a shard. Independent of `hashValue`, which the
    /// shard's dictionary computes anyway, and stable within a process.
    @inlinable
    var shardHash: UInt64 {
        switch storage {
        case .inline(let low, let high):
            return (low ^ (high &* 0x9E37_79B9_7F4A_7C15)) &* 0xFF51_AFD7_ED55_8CCD
        case .heap(let bytes):
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
            return hash &* 0xFF51_AFD7_ED55_8CCD
        }
    }

    /// Byte-wise lexicographic order (shorter prefix first), as memcmp orders keys.
    public static func < (lhs: Key, rhs: Key) -> Bool {
        lhs.withUnsafeBytes { left in
            rhs.withUnsafeBytes { right in left.lexicographicallyPrecedes(right) }
        }
    }
}

extension Key: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

extension Key: CustomStringConvertible {
    /// The key as text when it is printable UTF-8, otherwise as hex: safe for logs and errors.
    public var description: String {
        withUnsafeBytes { raw in
            if let text = String(validating: raw, as: UTF8.self),
               text.unicodeScalars.allSatisfy({ !$0.properties.generalCategory.isControl })
            {
                return text
            }
            return "0x" + raw.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        }
    }
}

extension Unicode.GeneralCategory {
    fileprivate var isControl: Bool { self == .control || self == .format || self == .unassigned }
}
