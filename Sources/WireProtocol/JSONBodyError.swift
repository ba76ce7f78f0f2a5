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
