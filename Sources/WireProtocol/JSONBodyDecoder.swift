/// The body of `PUT /v1/kv/{key}`: `{"value": "...", "encoding": "..."}`.
public struct PutRequestBody: Sendable, Equatable {
    /// "" when absent or null (Go leaves the zero value).
    public var value: String
    /// "" when absent or null.
    public var encoding: String
    /// Where `value` is not what was sent: the first invalid UTF-8 byte or unpaired surrogate
    /// escape in its JSON string, which Go's unquoting (and so `value`) replaces by U+FFFD. Nil
    /// when `value` holds exactly the text sent. (`"encoding":"utf-8"` refuses such a value.)
    public var valueDefect: JSONStringDefect?

    /// A body with these fields; the defaults are what an empty object `{}` decodes to.
    public init(value: String = "", encoding: String = "", valueDefect: JSONStringDefect? = nil) {
        self.value = value
        self.encoding = encoding
        self.valueDefect = valueDefect
    }
}

/// Where a JSON string's text could not be kept as sent (Go's unquoting puts U+FFFD there).
public enum JSONStringDefect: Sendable, Equatable, CustomStringConvertible {
    /// `byte`, at `offset` in the body, does not begin a valid UTF-8 sequence (or begins an
    /// overlong one, or one of a surrogate or of a value above U+10FFFF).
    case invalidUTF8(offset: Int, byte: UInt8)
    /// The `\u` escape at `offset` is a surrogate that is not half of a pair (`\ud800` alone).
    case unpairedSurrogate(offset: Int, codeUnit: UInt16)

    public var description: String {
        switch self {
        case .invalidUTF8(let offset, let byte):
            "invalid UTF-8 byte 0x\(Self.hex(UInt16(byte), digits: 2)) at byte \(offset)"
        case .unpairedSurrogate(let offset, let codeUnit):
            "unpaired surrogate \\u\(Self.hex(codeUnit, digits: 4)) at byte \(offset)"
        }
    }

    private static func hex(_ value: UInt16, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// What a JSON value is, in Go's words ("number", "bool", ...).
public enum JSONValueKind: String, Sendable, Equatable, CustomStringConvertible {
    case object, array, string, number, bool, null

    public var description: String { rawValue }
}

/// What the reader was looking for where a body went wrong.
public enum JSONExpectation: Sendable, Equatable, CustomStringConvertible {
    /// The start of a value (Go: "looking for beginning of value").
    case value
    /// A string opening an object key (Go: "looking for beginning of object key string").
    case objectKey
    /// ':' after an object key (Go: "after object key").
    case colon
    /// ',' or '}' after an object member (Go: "after object key:value pair").
    case commaOrObjectEnd
    /// ',' or ']' after an array element (Go: "after array element").
    case commaOrArrayEnd
    /// A character of a string or its closing quote; raw control characters are not allowed
    /// (Go: "in string literal").
    case stringCharacter
    /// One of `" \ / b f n r t u` after a backslash (Go: "in string escape code").
    case escapeCharacter
    /// A hexadecimal digit of a \u escape (Go: "in \u hexadecimal character escape").
    case hexDigit
    /// A digit of a number (Go: "in numeric literal" and its variants).
    case digit
    /// The rest of the literal true, false or null.
    case literal(String)

    public var description: String {
        switch self {
        case .value: "the start of a value"
        case .objectKey: "a string (an object key)"
        case .colon: "':' after an object key"
        case .commaOrObjectEnd: "',' or '}' after an object member"
        case .commaOrArrayEnd: "',' or ']' after an array element"
        case .stringCharacter: "a string character or the closing '\"' (control characters must be escaped)"
        case .escapeCharacter: "an escape character after '\\' (one of \" \\ / b f n r t u)"
        case .hexDigit: "a hexadecimal digit in a \\u escape"
        case .digit: "a digit"
        case .literal(let word): "the literal \(word)"
        }
    }
}

/// Why a PUT body was refused.
public enum JSONBodyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The body is empty or only whitespace (Go: EOF).
    case empty
    /// Not JSON: `found` at byte `offset` where `expected` should be.
    case malformed(offset: Int, found: UInt8, expected: JSONExpectation)
    /// The body ends (at `offset`, its length) in the middle of the JSON value (Go: unexpected EOF).
    case unexpectedEnd(offset: Int, expected: JSONExpectation)
    /// The '[' or '{' at `offset` would open more than `limit` nested arrays and objects.
    case nestingTooDeep(offset: Int, limit: Int)
    /// The body is valid JSON but not an object.
    case notAnObject(found: JSONValueKind)
    /// A member whose name is neither "value" nor "encoding" (in any case); `name` is unquoted.
    case unknownField(name: String)
    /// "value" or "encoding" holds something other than a string or null.
    case wrongType(field: String, found: JSONValueKind)
    /// Something other than whitespace follows the object, starting at `offset`.
    case trailingData(offset: Int)

    public var description: String {
        switch self {
        case .empty:
            "json: the body is empty (expected a JSON object)"
        case .malformed(let offset, let found, let expected):
            "json: invalid character \(Self.quoted(found)) at byte \(offset), expected \(expected)"
        case .unexpectedEnd(let offset, let expected):
            "json: unexpected end of input at byte \(offset), expected \(expected)"
        case .nestingTooDeep(let offset, let limit):
            "json: more than \(limit) nested arrays and objects at byte \(offset)"
        case .notAnObject(let found):
            "json: cannot unmarshal \(found) into the request body, which must be a JSON object"
        case .unknownField(let name):
            "json: unknown field \(Self.quoted(name))"
        case .wrongType(let field, let found):
            "json: cannot unmarshal \(found) into field \(Self.quoted(field)) of type string"
        case .trailingData(let offset):
            "json: unexpected data after the JSON object at byte \(offset)"
        }
    }

    /// A byte as Go's scanner quotes it in messages: 'x', or '\xNN' when it is not printable ASCII.
    private static func quoted(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "'"): "'\\''"
        case UInt8(ascii: "\\"): "'\\\\'"
        case 0x20..<0x7F: "'" + String(UnicodeScalar(byte)) + "'"
        default: "'\\x" + hex(byte) + "'"
        }
    }

    /// A string in double quotes with quotes, backslashes and control characters escaped (like
    /// Go's %q for the common cases), so a field name with odd bytes prints unambiguously.
    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{00}"..."\u{1F}", "\u{7F}": result += "\\x" + hex(UInt8(scalar.value))
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
}

/// Decodes PUT bodies as the Go server does: `json.NewDecoder(body)` with
/// `DisallowUnknownFields()` into `struct { Value, Encoding string }`, then a check that nothing but
/// whitespace follows the first value.
///
/// The rules, in the order Go applies them:
/// 1. Syntax first: the whole first value is checked before its meaning, so a syntax error
///    anywhere in it wins over every other error (`malformed`, `unexpectedEnd`,
///    `nestingTooDeep`; Go's limit of 10,000 nested arrays and objects).
/// 2. An empty or all-whitespace body is `empty`; a first value that is not an object is
///    `notAnObject` (Go would accept `null` as "no fields"; we refuse it, as the API asks for an
///    object).
/// 3. Members in order: a name matching neither "value" nor "encoding" ASCII-case-insensitively
///    (after unescaping) is `unknownField`; a field holding a number, bool, object or array is
///    `wrongType`; null leaves the field as it was; a later duplicate replaces an earlier one.
///    The first of these errors is the one reported.
/// 4. Only then: anything but whitespace after the object is `trailingData`.
///
/// Strings are unquoted as Go does (see `JSONParser.decodeString`). Bounded work: one pass over
/// the body plus one more over strings that contain escapes or invalid UTF-8; no recursion.
public enum PutRequestBodyDecoder {
    /// The most arrays and objects that may be open at once (Go's encoding/json limit).
    public static let maxNestingDepth = JSONParser.maxNestingDepth

    /// Decodes a whole request body. O(n) in the body's length.
    public static func decode(_ body: [UInt8]) throws(JSONBodyError) -> PutRequestBody {
        try body.withUnsafeBytes { bytes in
            Result { () throws(JSONBodyError) in try decode(bytes) }
        }.get()
    }

    /// Decodes a whole request body held in borrowed memory (no copy of the body is made).
    public static func decode(_ body: UnsafeRawBufferPointer) throws(JSONBodyError) -> PutRequestBody {
        var parser = JSONParser(body)
        return try decode(&parser)
    }

    private enum Field {
        case value, encoding

        var name: String {
            switch self {
            case .value: "value"
            case .encoding: "encoding"
            }
        }

        /// The field an unescaped member name selects: Go matches names exactly or by Unicode
        /// simple case folding, which for these two names is ASCII case folding (no non-ASCII
        /// character folds to any of their letters).
        init?(name: UnsafeRawBufferPointer) {
            if Self.equalIgnoringASCIICase(name, "value") {
                self = .value
            } else if Self.equalIgnoringASCIICase(name, "encoding") {
                self = .encoding
            } else {
                return nil
            }
        }

        /// Whether `bytes` is `lowercase` in any ASCII case (`lowercase` holds only a–z).
        private static func equalIgnoringASCIICase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
            guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
            let letters = lowercase.utf8Start
            for index in 0..<bytes.count where bytes[index] | 0x20 != letters[index] { return false }
            return true
        }
    }

    private static func decode(_ parser: inout JSONParser) throws(JSONBodyError) -> PutRequestBody {
        parser.skipWhitespace()
        guard let first = parser.current else { throw .empty }
        guard first == UInt8(ascii: "{") else { throw .notAnObject(found: try parser.skipValue(depth: 0)) }
        parser.index += 1

        var body = PutRequestBody()
        var firstError: JSONBodyError?
        parser.skipWhitespace()
        if parser.current == UInt8(ascii: "}") {
            parser.index += 1
        } else {
            members: while true {
                parser.skipWhitespace()
                guard parser.current == UInt8(ascii: "\"") else { throw parser.unexpected(.objectKey) }
                let (nameRange, nameIsVerbatim) = try parser.scanString()
                let name = nameIsVerbatim ? nil : parser.decodeString(nameRange)
                let field = if let name {
                    name.withUnsafeBytes { Field(name: $0) }
                } else {
                    Field(name: UnsafeRawBufferPointer(rebasing: parser.input[nameRange]))
                }
                parser.skipWhitespace()
                guard parser.current == UInt8(ascii: ":") else { throw parser.unexpected(.colon) }
                parser.index += 1
                parser.skipWhitespace()

                if let field, parser.current == UInt8(ascii: "\"") {
                    let (contents, isVerbatim) = try parser.scanString()
                    if firstError == nil {
                        var defect: JSONStringDefect?
                        let text = isVerbatim
                            ? String(decoding: UnsafeRawBufferPointer(rebasing: parser.input[contents]), as: UTF8.self)
                            : String(decoding: parser.decodeString(contents, firstDefect: &defect), as: UTF8.self)
                        switch field {
                        case .value:
                            body.value = text
                            body.valueDefect = defect  // a later duplicate replaces the value, and this
                        case .encoding: body.encoding = text
                        }
                    }
                } else {
                    if field == nil, firstError == nil {
                        let nameBytes = name ?? Array(UnsafeRawBufferPointer(rebasing: parser.input[nameRange]))
                        firstError = .unknownField(name: String(decoding: nameBytes, as: UTF8.self))
                    }
                    let kind = try parser.skipValue(depth: 1)
                    if let field, kind != .null, firstError == nil {
                        firstError = .wrongType(field: field.name, found: kind)
                    }
                }

                parser.skipWhitespace()
                switch parser.current {
                case UInt8(ascii: ","): parser.index += 1
                case UInt8(ascii: "}"):
                    parser.index += 1
                    break members
                default: throw parser.unexpected(.commaOrObjectEnd)
                }
            }
        }
        if let firstError { throw firstError }
        parser.skipWhitespace()
        guard parser.isAtEnd else { throw .trailingData(offset: parser.index) }
        return body
    }
}
