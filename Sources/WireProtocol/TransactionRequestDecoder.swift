/// The body of `POST /v1/txn`, decoded: keys and values as bytes, conditions as what they require.
///
///     {"conditions":[{"key":"k","revision":N} | {"key":…,"absent":true} | {"key":…,"present":true}
///                    | {"key":…,"value":"<base64>"}],
///      "puts":[{"key":…,"value":"<base64>","encoding":"base64"}],
///      "deletes":[{"key":…}]}
///
/// Every key may carry `"key_encoding":"utf8"` (the default: the JSON string's text is the key)
/// or `"base64"` (the key's bytes in base64: how a key that is not UTF-8 is sent, as listings
/// return it). A value's `encoding` is the PUT route's: base64 (the default) or a text encoding
/// (utf-8, utf8, plain, text; case and surrounding spaces ignored).
public struct TransactionRequest: Sendable, Equatable {
    /// What a condition requires of its key.
    public enum Requirement: Sendable, Equatable {
        /// `"revision":N`: the key's mod revision is N (0: the key is absent, as etcd's
        /// mod_revision of a missing key).
        case modRevision(UInt64)
        case absent
        case present
        case value([UInt8])
    }

    public struct Condition: Sendable, Equatable {
        public var key: [UInt8]
        public var requirement: Requirement

        public init(key: [UInt8], requirement: Requirement) {
            self.key = key
            self.requirement = requirement
        }
    }

    public struct Put: Sendable, Equatable {
        public var key: [UInt8]
        public var value: [UInt8]

        public init(key: [UInt8], value: [UInt8]) {
            self.key = key
            self.value = value
        }
    }

    public var conditions: [Condition] = []
    public var puts: [Put] = []
    public var deletes: [[UInt8]] = []

    public init(conditions: [Condition] = [], puts: [Put] = [], deletes: [[UInt8]] = []) {
        self.conditions = conditions
        self.puts = puts
        self.deletes = deletes
    }

    /// Conditions, puts and deletes together.
    public var operationCount: Int { conditions.count + puts.count + deletes.count }
}

/// Why a transaction body was refused.
public enum TransactionBodyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not JSON (or JSON followed by more data): the PUT body's syntax errors.
    case syntax(JSONBodyError)
    /// JSON, but not a transaction: `reason` names the field (`puts[2].value`) and what is wrong.
    case invalid(String)
    /// More than `limit` conditions, puts and deletes together (decoding stopped there).
    case tooManyOperations(limit: Int)

    public var description: String {
        switch self {
        case .syntax(let error): "invalid JSON body: \(error)"
        case .invalid(let reason): "invalid transaction: \(reason)"
        case .tooManyOperations(let limit):
            "too many operations: a transaction holds at most \(limit) conditions, puts and deletes together"
        }
    }
}

/// Decodes transaction bodies strictly: field names exactly as documented (no case folding: a new
/// route has no Go behaviour to follow), unknown fields refused, each field at most once, the
/// right JSON type for each. One pass, no recursion: the shape is fixed (an object of arrays of
/// flat objects), and any deeper value is skipped by `JSONParser.skipValue` and refused.
public enum TransactionRequestDecoder {
    /// Decodes `body`, stopping with `.tooManyOperations` as soon as it holds more than
    /// `maxOperations` operations (the work stays proportional to what is accepted).
    public static func decode(_ body: [UInt8], maxOperations: Int) throws(TransactionBodyError) -> TransactionRequest {
        try body.withUnsafeBytes { bytes in
            Result { () throws(TransactionBodyError) in
                var decoder = Decoder(parser: JSONParser(bytes), maxOperations: maxOperations)
                return try decoder.decode()
            }
        }.get()
    }

    /// A member of an operation's object, read but not yet interpreted.
    private enum Scalar {
        /// Decoded text, and where it differs from what was sent (invalid UTF-8, a lone surrogate).
        case string([UInt8], defect: JSONStringDefect?)
        case number(ArraySlice<UInt8>)
        case bool(Bool)
        case null
        /// An object or array where a scalar belongs.
        case nested(JSONValueKind)

        var kind: String {
            switch self {
            case .string: "a string"
            case .number: "a number"
            case .bool: "a bool"
            case .null: "null"
            case .nested(let kind): "an \(kind)"
            }
        }
    }

    private enum Section: String {
        case conditions, puts, deletes
    }

    private struct Decoder {
        var parser: JSONParser
        let maxOperations: Int
        var request = TransactionRequest()

        init(parser: JSONParser, maxOperations: Int) {
            self.parser = parser
            self.maxOperations = maxOperations
        }

        mutating func decode() throws(TransactionBodyError) -> TransactionRequest {
            parser.skipWhitespace()
            guard let first = parser.current else { throw .syntax(.empty) }
            guard first == UInt8(ascii: "{") else {
                let kind = try Self.syntax { () throws(JSONBodyError) in try parser.skipValue(depth: 0) }
                throw .syntax(.notAnObject(found: kind))
            }
            parser.index += 1
            var seen: Set<String> = []
            try members { (decoder: inout Decoder, name: String) throws(TransactionBodyError) in
                guard let section = Section(rawValue: name) else {
                    throw .invalid("unknown field \"\(name)\" (a transaction has conditions, puts and deletes)")
                }
                guard seen.insert(name).inserted else { throw .invalid("field \"\(name)\" given twice") }
                try decoder.readSection(section)
            }
            parser.skipWhitespace()
            guard parser.isAtEnd else { throw .syntax(.trailingData(offset: parser.index)) }
            return request
        }

        /// Reads the members of the object whose '{' was just consumed, calling `body` with each
        /// name, its ':' consumed and the whitespace after it skipped; `body` reads the value.
        private mutating func members(
            _ body: (inout Decoder, String) throws(TransactionBodyError) -> Void
        ) throws(TransactionBodyError) {
            parser.skipWhitespace()
            if parser.current == UInt8(ascii: "}") {
                parser.index += 1
                return
            }
            while true {
                parser.skipWhitespace()
                guard parser.current == UInt8(ascii: "\"") else { throw .syntax(parser.unexpected(.objectKey)) }
                let (range, verbatim) = try Self.syntax { () throws(JSONBodyError) in try parser.scanString() }
                let nameBytes = verbatim ? Array(parser.input[range]) : parser.decodeString(range)
                let name = String(decoding: nameBytes, as: UTF8.self)
                parser.skipWhitespace()
                guard parser.current == UInt8(ascii: ":") else { throw .syntax(parser.unexpected(.colon)) }
                parser.index += 1
                parser.skipWhitespace()
                try body(&self, name)
                parser.skipWhitespace()
                switch parser.current {
                case UInt8(ascii: ","): parser.index += 1
                case UInt8(ascii: "}"):
                    parser.index += 1
                    return
                default: throw .syntax(parser.unexpected(.commaOrObjectEnd))
                }
            }
        }

        /// One of "conditions", "puts", "deletes": an array of objects, or null (none).
        private mutating func readSection(_ section: Section) throws(TransactionBodyError) {
            switch parser.current {
            case UInt8(ascii: "n"):
                _ = try Self.syntax { () throws(JSONBodyError) in try parser.skipScalar() }
                return
            case UInt8(ascii: "["):
                parser.index += 1
            default:
                let kind = try Self.syntax { () throws(JSONBodyError) in try parser.skipValue(depth: 1) }
                throw .invalid("\"\(section.rawValue)\" must be an array of objects, not \(Scalar.nested(kind).kind)")
            }
            parser.skipWhitespace()
            if parser.current == UInt8(ascii: "]") {
                parser.index += 1
                return
            }
            var position = 0
            while true {
                parser.skipWhitespace()
                let path = "\(section.rawValue)[\(position)]"
                guard parser.current == UInt8(ascii: "{") else {
                    let kind = try Self.syntax { () throws(JSONBodyError) in try parser.skipValue(depth: 2) }
                    throw .invalid("\(path) must be an object, not \(Scalar.nested(kind).kind)")
                }
                parser.index += 1
                let fields = try readFlatObject(path: path)
                guard request.operationCount < maxOperations else { throw .tooManyOperations(limit: maxOperations) }
                try append(section, fields, path: path)
                position += 1
                parser.skipWhitespace()
                switch parser.current {
                case UInt8(ascii: ","): parser.index += 1
                case UInt8(ascii: "]"):
                    parser.index += 1
                    return
                default: throw .syntax(parser.unexpected(.commaOrArrayEnd))
                }
            }
        }

        /// The members of an operation's object (its '{' consumed), each name at most once.
        private mutating func readFlatObject(path: String) throws(TransactionBodyError) -> [String: Scalar] {
            var fields: [String: Scalar] = [:]
            try members { (decoder: inout Decoder, name: String) throws(TransactionBodyError) in
                let value = try decoder.readScalar()
                guard fields.updateValue(value, forKey: name) == nil else {
                    throw .invalid("\(path): field \"\(name)\" given twice")
                }
            }
            return fields
        }

        private mutating func readScalar() throws(TransactionBodyError) -> Scalar {
            let start = parser.index
            switch parser.current {
            case UInt8(ascii: "\""):
                let (range, verbatim) = try Self.syntax { () throws(JSONBodyError) in try parser.scanString() }
                if verbatim { return .string(Array(parser.input[range]), defect: nil) }
                var defect: JSONStringDefect?
                let text = parser.decodeString(range, firstDefect: &defect)
                return .string(text, defect: defect)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                return .nested(try Self.syntax { () throws(JSONBodyError) in try parser.skipValue(depth: 3) })
            default:
                let kind = try Self.syntax { () throws(JSONBodyError) in try parser.skipScalar() }
                switch kind {
                case .number: return .number(ArraySlice(parser.input[start..<parser.index]))
                case .bool: return .bool(parser.input[start] == UInt8(ascii: "t"))
                default: return .null
                }
            }
        }

        // MARK: Operations

        private mutating func append(_ section: Section, _ fields: [String: Scalar], path: String) throws(TransactionBodyError) {
            let allowed: Set<String> = switch section {
            case .conditions: ["key", "key_encoding", "revision", "absent", "present", "value", "encoding"]
            case .puts: ["key", "key_encoding", "value", "encoding"]
            case .deletes: ["key", "key_encoding"]
            }
            if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw .invalid("\(path): unknown field \"\(unknown)\" (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            let key = try Self.key(fields, path: path)
            switch section {
            case .deletes:
                request.deletes.append(key)
            case .puts:
                guard let value = fields["value"] else { throw .invalid("\(path): a put needs a \"value\"") }
                request.puts.append(.init(key: key, value: try Self.value(value, encoding: fields["encoding"], path: path)))
            case .conditions:
                let requirements = ["revision", "absent", "present", "value"].filter { fields[$0] != nil }
                guard requirements.count == 1 else {
                    throw .invalid("\(path): a condition needs exactly one of \"revision\", \"absent\", \"present\" or \"value\" (got \(requirements.isEmpty ? "none" : requirements.joined(separator: ", ")))")
                }
                if fields["encoding"] != nil, requirements[0] != "value" {
                    throw .invalid("\(path): \"encoding\" applies only to a \"value\" condition")
                }
                let requirement: TransactionRequest.Requirement
                switch requirements[0] {
                case "revision":
                    guard case .number(let digits) = fields["revision"]!, let revision = Self.unsignedInteger(digits) else {
                        throw .invalid("\(path).revision must be a whole number from 0 to \(UInt64.max), not \(Self.describe(fields["revision"]!))")
                    }
                    requirement = .modRevision(revision)
                case "absent", "present":
                    let name = requirements[0]
                    guard case .bool(true) = fields[name]! else {
                        throw .invalid("\(path).\(name) must be true (leave it out otherwise), not \(Self.describe(fields[name]!))")
                    }
                    requirement = name == "absent" ? .absent : .present
                default:
                    requirement = .value(try Self.value(fields["value"]!, encoding: fields["encoding"], path: path))
                }
                request.conditions.append(.init(key: key, requirement: requirement))
            }
        }

        /// The key's bytes, by its `key_encoding`.
        private static func key(_ fields: [String: Scalar], path: String) throws(TransactionBodyError) -> [UInt8] {
            guard case .string(let text, let defect) = fields["key"] else {
                throw .invalid("\(path).key must be a string" + (fields["key"].map { ", not \(describe($0))" } ?? " (it is missing)"))
            }
            var encoding = "utf8"
            if let given = fields["key_encoding"] {
                guard case .string(let name, _) = given else {
                    throw .invalid("\(path).key_encoding must be a string, not \(describe(given))")
                }
                encoding = String(decoding: name, as: UTF8.self)
            }
            switch encoding {
            case "utf8", "utf-8":
                if let defect {
                    throw .invalid("\(path).key is not valid Unicode text (\(defect)): send a key that is not UTF-8 with \"key_encoding\":\"base64\"")
                }
                return text
            case "base64":
                do {
                    return try Base64.decode(text)
                } catch {
                    throw .invalid("\(path).key is not valid base64: \(error)")
                }
            default:
                throw .invalid("\(path).key_encoding must be \"utf8\" or \"base64\", not \"\(encoding)\"")
            }
        }

        /// A value's bytes, by its `encoding` (the PUT route's names).
        private static func value(_ value: Scalar, encoding: Scalar?, path: String) throws(TransactionBodyError) -> [UInt8] {
            guard case .string(let text, let defect) = value else {
                throw .invalid("\(path).value must be a string, not \(describe(value))")
            }
            var name = "base64"
            if let encoding {
                guard case .string(let bytes, _) = encoding else {
                    throw .invalid("\(path).encoding must be a string, not \(describe(encoding))")
                }
                name = String(decoding: bytes, as: UTF8.self)
            }
            switch trimmedLowercase(name) {
            case "", "base64":
                do {
                    return try Base64.decode(text)
                } catch {
                    throw .invalid("\(path).value is not valid base64: \(error)")
                }
            case "utf-8", "utf8", "plain", "text":
                if let defect {
                    throw .invalid("\(path).value with encoding \"\(name)\" must be valid Unicode text, but it has an \(defect): send bytes that are not UTF-8 as base64")
                }
                return text
            default:
                throw .invalid("\(path): unknown encoding \"\(name)\": use base64 (the default) or utf-8")
            }
        }

        /// `name` without surrounding ASCII whitespace, lowercased (as the PUT route compares).
        private static func trimmedLowercase(_ name: String) -> String {
            let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
            let bytes = Array(name.utf8)
            let trimmed = bytes.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
            return String(decoding: trimmed, as: UTF8.self).lowercased()
        }

        /// Digits only (no sign, fraction or exponent), no leading zero, at most UInt64.max.
        private static func unsignedInteger(_ digits: ArraySlice<UInt8>) -> UInt64? {
            guard let first = digits.first, first != UInt8(ascii: "-") else { return nil }
            guard first != UInt8(ascii: "0") || digits.count == 1 else { return nil }
            var value: UInt64 = 0
            for digit in digits {
                guard digit &- UInt8(ascii: "0") < 10 else { return nil }
                let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return nil }
                value = sum
            }
            return value
        }

        private static func describe(_ scalar: Scalar) -> String {
            if case .number(let digits) = scalar { return String(decoding: digits, as: UTF8.self) }
            return scalar.kind
        }

        /// Runs a step of the JSON reader, its syntax errors wrapped.
        private static func syntax<T>(_ step: () throws(JSONBodyError) -> T) throws(TransactionBodyError) -> T {
            do {
                return try step()
            } catch {
                throw .syntax(error)
            }
        }
    }
}
