#if canImport(Glibc)
import Glibc
#endif

/// A key: arbitrary bytes (not necessarily UTF-8), compared and hashed byte for byte.
///
/// A key of up to 15 bytes is stored inline in 16 bytes, with no heap allocation: the common case
/// (short identifiers) then costs no allocation and no reference counting, and hashes as two
/// machine words. A longer key keeps its bytes in a heap object. `MemoryLayout<Key>.size` is 16
/// (the inline length's unused high bits tag the heap case), which keeps a million keys' hash
/// buckets small.
///
/// Invariant: a key of 15 bytes or fewer is always `.inline`, with its unused inline bytes zero,
/// so equal keys have equal representations and `==`/`hash(into:)` can compare words directly
/// (`checkInvariants` checks this, and what else the representation must keep, in debug builds).
public struct Key: Sendable, Hashable, Comparable {
    @usableFromInline
    enum Storage: Sendable {
        case inline(InlineKeyBytes)
        case heap(HeapKeyBytes)
    }

    /// Keys up to this length are stored inline.
    public static let inlineCapacity = 15

    @usableFromInline
    let storage: Storage

    /// A key with a copy of `bytes`.
    public init(bytes: UnsafeRawBufferPointer) {
        if bytes.count > Key.inlineCapacity {
            storage = .heap(HeapKeyBytes(Array(bytes)))
        } else {
            var inline = InlineKeyBytes()
            withUnsafeMutableBytes(of: &inline) { raw in
                if let source = bytes.baseAddress { raw.baseAddress!.copyMemory(from: source, byteCount: bytes.count) }
            }
            inline.length = InlineKeyBytes.Length(rawValue: UInt8(bytes.count))!
            storage = .inline(inline)
        }
        checkInvariants()
    }

    /// The type's invariant and what `==`, `hash(into:)`, `compare` and `sortPrefix` assume of
    /// the representation, checked in debug builds (the tests, the sanitizers) after every
    /// initialiser: `Key` is immutable, and every initialiser ends in `init(bytes:)`, so each key
    /// is checked once, when it is made. In release builds this is an empty function that inlines
    /// away, as swift-collections' `_invariantCheck()`.
    ///
    /// - A key of `inlineCapacity` bytes or fewer is inline, a longer one on the heap: `==` takes
    ///   an inline key and a heap key to differ without looking at their bytes, and `sortPrefix`
    ///   loads 16 bytes from a heap key's array.
    /// - An inline key's bytes past its length are zero: `==` and `hash(into:)` compare and hash
    ///   the two words whole, and `compare` orders them as two big-endian words.
    /// - The length is the 16th byte of the inline form, and `Key` is 16 bytes: `compare` counts on
    ///   the length being the last byte it compares, `sortPrefix` masks it out, and the enum tag
    ///   must live in the length's spare values (`InlineKeyBytes.Length`).
    #if DEBUG
    @inline(never)
    func checkInvariants() {
        assert(Key.layoutIsAsAssumed, "Key is not 16 bytes, or the inline length is not the 16th of 16 bytes")
        switch storage {
        case .inline(let inline):
            let length = Int(inline.length.rawValue)
            assert(length <= Key.inlineCapacity, "an inline key of \(length) bytes")
            Swift.withUnsafeBytes(of: inline) { raw in
                for index in length..<Key.inlineCapacity {
                    assert(raw[index] == 0, "byte \(index) of an inline key of \(length) bytes is \(raw[index]), not 0")
                }
            }
        case .heap(let heap):
            assert(heap.bytes.count > Key.inlineCapacity, "a key of \(heap.bytes.count) bytes on the heap: it must be inline")
        }
    }

    /// The layout part of `checkInvariants`, worked out once (it holds for every key or none).
    private static let layoutIsAsAssumed =
        MemoryLayout<Key>.size == 16 && MemoryLayout<InlineKeyBytes>.size == 16
        && MemoryLayout<InlineKeyBytes>.offset(of: \.length) == 15
    #else
    @inline(__always)
    func checkInvariants() {}
    #endif

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
        case .inline(let inline): Int(inline.length.rawValue)
        case .heap(let heap): heap.bytes.count
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
        case .inline(let inline):
            let count = Int(inline.length.rawValue)
            return try Swift.withUnsafeBytes(of: inline) { raw in
                try body(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
        case .heap(let heap):
            return try heap.bytes.withUnsafeBytes(body)
        }
    }

    public static func == (lhs: Key, rhs: Key) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.inline(let left), .inline(let right)): left.words == right.words
        case (.heap(let left), .heap(let right)): left.bytes == right.bytes
        default: false  // by the invariant, an inline key never equals a heap key
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch storage {
        case .inline(let inline):
            let words = inline.words
            hasher.combine(words.0)
            hasher.combine(words.1)
        case .heap(let heap):
            heap.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
            hasher.combine(heap.bytes.count)
        }
    }

    /// A cheap, well-mixed hash for choosing a shard. Independent of `hashValue`, which the
    /// shard's dictionary computes anyway, and stable within a process.
    @inlinable
    var shardHash: UInt64 {
        switch storage {
        case .inline(let inline):
            let words = inline.words
            return (words.0 ^ (words.1 &* 0x9E37_79B9_7F4A_7C15)) &* 0xFF51_AFD7_ED55_8CCD
        case .heap(let heap):
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
            for byte in heap.bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
            return hash &* 0xFF51_AFD7_ED55_8CCD
        }
    }

    /// Byte-wise lexicographic order of unsigned bytes (a prefix sorts first), as memcmp, etcd
    /// and bbolt order keys.
    @inlinable
    public static func < (lhs: Key, rhs: Key) -> Bool { lhs.compare(rhs) < 0 }

    /// -1, 0 or 1 as `self` sorts before, equal to or after `other` (unsigned bytes, a prefix
    /// first). Two inline keys compare as two big-endian words: their unused bytes are zero and
    /// the 16th byte is the length, so "ab" (length 2) sorts before "ab\0" (length 3), as it must.
    @inlinable
    public func compare(_ other: Key) -> Int {
        if case .inline(let left) = storage, case .inline(let right) = other.storage {
            let (left0, left1) = left.words
            let (right0, right1) = right.words
            if left0 != right0 { return left0.bigEndian < right0.bigEndian ? -1 : 1 }
            if left1 != right1 { return left1.bigEndian < right1.bigEndian ? -1 : 1 }
            return 0
        }
        return withUnsafeBytes { left in
            other.withUnsafeBytes { right in
                let common = min(left.count, right.count)
                if common > 0 {
                    let order = Key.compareBytes(left.baseAddress!, right.baseAddress!, common)
                    if order != 0 { return order < 0 ? -1 : 1 }
                }
                return left.count == right.count ? 0 : (left.count < right.count ? -1 : 1)
            }
        }
    }

    /// The key's first 16 bytes, zero-padded, as two big-endian words: when two keys' prefixes
    /// differ, they order the keys as `compare` does (a key that ends early pads with zeros, and
    /// a zero pad sorts below any byte but zero, which makes the prefixes equal); when they are
    /// equal, only `compare` can tell. For searches over many keys that rarely share 16 bytes.
    @inlinable
    var sortPrefix: KeyPrefix {
        switch storage {
        case .inline(let inline):
            let (word0, word1) = inline.words
            return KeyPrefix(high: word0.bigEndian, low: word1.bigEndian & ~0xFF)  // the 16th byte is the length
        case .heap(let heap):
            return heap.bytes.withUnsafeBytes { raw in
                KeyPrefix(high: raw.loadUnaligned(as: UInt64.self).bigEndian, low: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian)
            }
        }
    }

    /// memcmp, reachable from inlinable code.
    @usableFromInline
    static func compareBytes(_ left: UnsafeRawPointer, _ right: UnsafeRawPointer, _ count: Int) -> Int32 {
        memcmp(left, right, count)
    }

    /// Whether the key starts with `prefix`'s bytes.
    public func hasPrefix(_ prefix: Key) -> Bool {
        withUnsafeBytes { bytes in
            prefix.withUnsafeBytes { prefix in
                bytes.count >= prefix.count && (prefix.count == 0 || memcmp(bytes.baseAddress!, prefix.baseAddress!, prefix.count) == 0)
            }
        }
    }

    /// The smallest key greater than every key that starts with this one (the end of a prefix
    /// range, as etcd's `range_end` for a prefix): the last byte below 0xFF incremented, the bytes
    /// after it dropped. Nil if every byte is 0xFF (or the key is empty): the range is unbounded.
    public var prefixEnd: Key? {
        var bytes = self.bytes
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return Key(bytes)
            }
            bytes.removeLast()
        }
        return nil
    }
}

/// A key's first 16 bytes as two big-endian words (`Key.sortPrefix`).
@usableFromInline
struct KeyPrefix: Sendable, Equatable {
    @usableFromInline var high: UInt64
    @usableFromInline var low: UInt64

    @inlinable
    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// -1, 0 or 1 (0: equal prefixes, which decides nothing about the keys).
    @inlinable
    func compare(_ other: KeyPrefix) -> Int {
        if high != other.high { return high < other.high ? -1 : 1 }
        if low != other.low { return low < other.low ? -1 : 1 }
        return 0
    }
}

/// The 15 inline bytes and the length, laid out so the length's unused high bits are spare.
@usableFromInline
struct InlineKeyBytes: Sendable {
    /// 0…15; an enum rather than a UInt8 so that Swift can use its unused values to tag
    /// `Key.Storage`, keeping `Key` at 16 bytes.
    @usableFromInline
    enum Length: UInt8, Sendable {
        case l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13, l14, l15
    }

    var byte0to7: UInt64 = 0
    var byte8to11: UInt32 = 0
    var byte12to13: UInt16 = 0
    var byte14: UInt8 = 0
    @usableFromInline
    var length: Length = .l0

    /// The 16 bytes as two words (for hashing and equality).
    @usableFromInline
    var words: (UInt64, UInt64) {
        withUnsafeBytes(of: self) { raw in
            (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }
}

/// The bytes of a key longer than 15 bytes. Immutable.
@usableFromInline
final class HeapKeyBytes: Sendable {
    @usableFromInline
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }
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
