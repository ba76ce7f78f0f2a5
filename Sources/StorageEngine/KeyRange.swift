/// Keys from `start` (inclusive) to `end` (exclusive), in unsigned-byte order; nil is unbounded.
public struct KeyRange: Sendable, Equatable {
    public var start: Key?
    public var end: Key?

    public init(start: Key? = nil, end: Key? = nil) {
        self.start = start
        self.end = end
    }

    /// Every key.
    public static let all = KeyRange()

    /// Every key that starts with `prefix` (every key, for the empty prefix).
    public static func prefix(_ prefix: Key) -> KeyRange {
        prefix.isEmpty ? .all : KeyRange(start: prefix, end: prefix.prefixEnd)
    }

    /// True when no key can lie in the range (start at or after end).
    public var isEmpty: Bool {
        guard let start, let end else { return false }
        return start.compare(end) >= 0
    }
}

/// How to read a page of a listing.
public struct ListOptions: Sendable, Equatable {
    /// At most this many entries (at least 1).
    public var limit: Int
    /// Descending order instead of ascending.
    public var reverse: Bool
    /// Entries without their values.
    public var keysOnly: Bool
    /// The cursor: continue after this key (the last key of the previous page, `ListPage.cursor`).
    public var after: Key?

    public init(limit: Int = 100, reverse: Bool = false, keysOnly: Bool = false, after: Key? = nil) {
        self.limit = limit
        self.reverse = reverse
        self.keysOnly = keysOnly
        self.after = after
    }
}

/// One key as a read returns it, with etcd's two revisions.
public struct KeyEntry: Sendable, Equatable {
    public let key: Key
    /// Nil when the listing asked for keys only.
    public let value: [UInt8]?
    /// The revision of the write that created this incarnation of the key.
    public let createRevision: UInt64
    /// The revision of the write that last changed it.
    public let modRevision: UInt64

    public init(key: Key, value: [UInt8]?, createRevision: UInt64, modRevision: UInt64) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
    }
}

/// A page of a listing, read from one consistent state: an atomic batch is in it entirely or not
/// at all.
public struct ListPage: Sendable, Equatable {
    public let entries: [KeyEntry]
    /// Whether keys lie beyond the last entry in the listing's direction.
    public let more: Bool
    /// The store revision the page was read at.
    public let revision: UInt64

    /// Where the next page starts (pass as `ListOptions.after`), or nil on the last page.
    public var cursor: Key? { more ? entries.last?.key : nil }
}

/// A page as `Database.listStored` returns it: the values are references to the map's immutable
/// bytes, not copies.
public struct StoredPage: Sendable {
    public let entries: [StoredEntry]
    /// Whether keys lie beyond the last entry in the listing's direction.
    public let more: Bool
    /// The store revision the page was read at.
    public let revision: UInt64

    /// Where the next page starts (pass as `ListOptions.after`), or nil on the last page.
    public var cursor: Key? { more ? entries.last?.key : nil }
}

/// One key of a `StoredPage`: as `KeyEntry`, with its value by reference.
public struct StoredEntry: Sendable {
    public let key: Key
    public let value: StoredValue
    public let createRevision: UInt64
    public let modRevision: UInt64
}
