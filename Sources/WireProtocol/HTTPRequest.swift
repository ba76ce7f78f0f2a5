/// An HTTP/1.x request as the decoder delivers it (RFC 9112), and the pieces it is made of: the
/// version and the header fields.
///
/// Bytes stay bytes where the server must see exactly what the client sent: the request-target is
/// kept raw (percent escapes and all), because a key may hold any byte and only the router knows
/// which part of the path is a key (`PercentDecoding` decodes it there). Header names and values
/// are Strings: they are short, compared case-insensitively, and read by humans.

/// The protocol version of a request line, "HTTP/<major>.<minor>".
public struct HTTPVersion: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }
}

/// Header fields in the order they were received, names in the case they were sent.
///
/// Lookups compare names case-insensitively (ASCII only, as field names are tokens). A name may
/// occur several times (`values(_:)` returns all of them); nothing is merged or reordered, so a
/// proxy or a log sees the fields exactly as sent. Lookups are linear: a request has a handful of
/// fields, and a linear scan of a small array beats hashing every name on every request.
public struct HTTPHeaders: Sendable, Equatable, Sequence, CustomStringConvertible {
    public typealias Element = (name: String, value: String)

    private var entries: [Element]

    public init(_ entries: [(name: String, value: String)] = []) {
        self.entries = entries
    }

    /// The first value of the field `name` (compared case-insensitively), or nil. O(count).
    public subscript(name: String) -> String? {
        for entry in entries where HTTPSyntax.equalsIgnoringCase(entry.name, name) { return entry.value }
        return nil
    }

    /// Every value of the field `name` (compared case-insensitively), in received order. O(count).
    public func values(_ name: String) -> [String] {
        entries.filter { HTTPSyntax.equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// Whether a field `name` is present (compared case-insensitively). O(count).
    public func contains(_ name: String) -> Bool {
        self[name] != nil
    }

    /// The number of field lines (a name sent twice counts twice).
    public var count: Int { entries.count }

    public var isEmpty: Bool { entries.isEmpty }

    /// Adds a field after the existing ones. Amortized O(1).
    public mutating func append(name: String, value: String) {
        if entries.isEmpty { entries.reserveCapacity(8) }
        entries.append((name: name, value: value))
    }

    public var underestimatedCount: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[Element]> {
        entries.makeIterator()
    }

    /// Equal when the same names (case included) have the same values in the same order.
    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public var description: String {
        "[" + entries.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}

/// One decoded request: the request line, the header fields and the whole (de-chunked) body.
///
/// `path` and `query` are computed from `target`, so they always agree with it.
public struct HTTPRequest: Sendable, Equatable {
    /// The method exactly as sent; methods are case-sensitive ("get" is not "GET").
    public var method: String
    /// The request-target bytes as sent, not percent-decoded: "/v1/kv/a%2Fb?x=1". An absolute-form
    /// target ("http://host/path?q") is reduced by the decoder to its origin form ("/path?q"); an
    /// asterisk-form target is "*".
    public var target: [UInt8]
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// The whole body, de-chunked if it was sent chunked; empty when the request had none.
    public var body: [UInt8]
    /// Whether the connection stays open after the response: HTTP/1.1 unless a `Connection`
    /// field lists "close"; HTTP/1.0 only if one lists "keep-alive" (and none "close").
    public var keepAlive: Bool

    /// Builds a request; `keepAlive` follows from `version` and the `Connection` fields
    /// (`HTTPRequest.defaultKeepAlive`).
    public init(
        method: String, target: [UInt8], version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []
    ) {
        self.init(
            method: method, target: target, version: version, headers: headers, body: body,
            keepAlive: HTTPRequest.defaultKeepAlive(version: version, headers: headers))
    }

    public init(
        method: String, target: [UInt8], version: HTTPVersion, headers: HTTPHeaders, body: [UInt8],
        keepAlive: Bool
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The target up to, not including, the first '?'. O(target length).
    public var path: ArraySlice<UInt8> {
        guard let mark = target.firstIndex(of: HTTPSyntax.questionMark) else { return target[...] }
        return target[..<mark]
    }

    /// The target after the first '?', or nil when there is no '?' (an empty query, "/a?", is
    /// empty, not nil). O(target length).
    public var query: ArraySlice<UInt8>? {
        guard let mark = target.firstIndex(of: HTTPSyntax.questionMark) else { return nil }
        return target[(mark + 1)...]
    }

    /// The persistence rule of RFC 9112 §9.3: HTTP/1.1 keeps the connection unless "close" is
    /// among the `Connection` options; HTTP/1.0 closes it unless "keep-alive" is (and "close" is
    /// not). Options are comma-separated tokens, compared case-insensitively, over every
    /// `Connection` field line.
    public static func defaultKeepAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
        var options = HTTPConnectionOptions()
        for (name, value) in headers where HTTPSyntax.equalsIgnoringCase(name, "connection") {
            options.add(value.utf8)
        }
        return options.keepAlive(version: version)
    }
}

/// The options of `Connection` fields that decide persistence.
struct HTTPConnectionOptions {
    var close = false
    var keepAliveRequested = false

    /// Reads one field value: a comma-separated list of tokens with optional whitespace.
    mutating func add<Bytes: BidirectionalCollection<UInt8>>(_ value: Bytes) {
        var start = value.startIndex
        while true {
            let end = value[start...].firstIndex(of: HTTPSyntax.comma) ?? value.endIndex
            let option = HTTPSyntax.trimmingWhitespace(value[start..<end])
            if HTTPSyntax.equalsIgnoringCase(option, "close") { close = true }
            if HTTPSyntax.equalsIgnoringCase(option, "keep-alive") { keepAliveRequested = true }
            guard end != value.endIndex else { return }
            start = value.index(after: end)
        }
    }

    func keepAlive(version: HTTPVersion) -> Bool {
        if close { return false }
        return version == .http1_0 ? keepAliveRequested : true
    }
}

// MARK: - ASCII as HTTP uses it

/// Byte classes and comparisons of the HTTP grammar (RFC 9110 §5.6). Field names and methods are
/// tokens, and tokens are ASCII, so case-insensitive means ASCII case-insensitive.
enum HTTPSyntax {
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let percent: UInt8 = 0x25
    static let comma: UInt8 = 0x2C
    static let slash: UInt8 = 0x2F
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let questionMark: UInt8 = 0x3F
    static let asterisk: UInt8 = 0x2A
    static let delete: UInt8 = 0x7F

    /// tchar: "!#$%&'*+-.^_`|~", digits and letters.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// OWS: space or horizontal tab.
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    /// The value of a hex digit (0-9, a-f, A-F): chunk sizes and percent escapes.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte &- UInt8(ascii: "A") &+ 10
        default: nil
        }
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// `bytes` without leading and trailing OWS.
    static func trimmingWhitespace<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> Bytes.SubSequence {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start != end, isWhitespace(bytes[start]) { bytes.formIndex(after: &start) }
        while end != start, isWhitespace(bytes[bytes.index(before: end)]) { bytes.formIndex(before: &end) }
        return bytes[start..<end]
    }

    static func equalsIgnoringCase(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.count == rhs.utf8.count && equalsIgnoringCase(lhs.utf8, rhs)
    }

    static func equalsIgnoringCase<Bytes: Collection<UInt8>>(_ bytes: Bytes, _ other: String) -> Bool {
        bytes.elementsEqual(other.utf8) { lowercased($0) == lowercased($1) }
    }
}
