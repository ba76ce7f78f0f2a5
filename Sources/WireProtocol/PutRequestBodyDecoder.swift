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
