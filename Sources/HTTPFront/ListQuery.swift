import StorageEngine
import WireProtocol

/// The query of `GET /v1/kv?…`, checked whole before anything is read:
///
///     prefix=P           keys that start with P          (not with start or end)
///     start=S, end=E     keys from S (inclusive) to E (exclusive); either may be left out
///     limit=N            at most N items, 1…1000 (default 100)
///     reverse=B          descending order (true|false, default false)
///     keys_only=B        items without their values
///     count_only=B       only the number of keys in the range (no limit, token, reverse, keys_only)
///     token=T            the previous page's token: continue after its last key
///
/// Keys are raw bytes, percent-encoded as in the key route's path: "%00", "%FF", and '+' is a
/// plus, not a space (encode a space as %20). An empty start or end is no bound. Unknown names, a
/// name given twice, a name without '=', and any value outside these are refused: a typo must not
/// silently list something else (a `limt=10` that lists 100 keys).
struct ListQuery {
    static let defaultLimit = 100
    static let maxLimit = 1000

    var range = KeyRange.all
    var limit = ListQuery.defaultLimit
    var reverse = false
    var keysOnly = false
    var countOnly = false
    var after: Key?

    private enum Name: String, CaseIterable {
        case prefix, start, end, limit, reverse, keys_only, count_only, token
    }

    init(_ query: ArraySlice<UInt8>?, maxKeySize: Int) throws(BadRequest) {
        var values: [Name: [UInt8]] = [:]
        for parameter in (query ?? []).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard let equals = parameter.firstIndex(of: UInt8(ascii: "=")) else {
                throw BadRequest("parameter \"\(String(decoding: parameter, as: UTF8.self))\" needs a value (name=value)")
            }
            let rawName = String(decoding: parameter[..<equals], as: UTF8.self)
            guard let name = Name(rawValue: rawName) else {
                throw BadRequest("unknown parameter \"\(rawName)\" (known: \(Name.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let value = PercentDecoding.decode(parameter[(equals + 1)...]) else {
                throw BadRequest("invalid URL escape in parameter \(rawName) (a '%' must be followed by two hex digits)")
            }
            guard values.updateValue(value, forKey: name) == nil else {
                throw BadRequest("parameter \(rawName) given twice")
            }
        }

        if let prefix = values[.prefix] {
            guard values[.start] == nil, values[.end] == nil else {
                throw BadRequest("prefix cannot be combined with start or end (a prefix is a range of its own)")
            }
            range = .prefix(Key(prefix))
        } else {
            range = KeyRange(
                start: values[.start].flatMap { $0.isEmpty ? nil : Key($0) },
                end: values[.end].flatMap { $0.isEmpty ? nil : Key($0) })
        }
        reverse = try Self.flag(values[.reverse], .reverse)
        keysOnly = try Self.flag(values[.keys_only], .keys_only)
        countOnly = try Self.flag(values[.count_only], .count_only)
        if countOnly {
            let paging = [Name.limit, .token, .reverse, .keys_only].filter { values[$0] != nil }
            guard paging.isEmpty else {
                throw BadRequest("count_only=true counts the whole range: it takes no \(paging.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if let text = values[.limit] {
            // Digits only, at most four of them after leading zeros: no sign, no overflow.
            let digits = text.drop { $0 == UInt8(ascii: "0") }
            guard !text.isEmpty, text.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }), digits.count <= 4,
                  let number = Int(String(decoding: digits.isEmpty ? [UInt8(ascii: "0")] : Array(digits), as: UTF8.self)),
                  (1...Self.maxLimit).contains(number)
            else {
                throw BadRequest("limit must be a whole number from 1 to \(Self.maxLimit), not \"\(String(decoding: text, as: UTF8.self))\"")
            }
            limit = number
        }
        if let token = values[.token] {
            after = try ListToken.decode(token, reverse: reverse, maxKeySize: maxKeySize)
        }
    }

    private static func flag(_ value: [UInt8]?, _ name: Name) throws(BadRequest) -> Bool {
        switch value {
        case nil: return false
        case let value? where value.elementsEqual("true".utf8): return true
        case let value? where value.elementsEqual("false".utf8): return false
        case let value?:
            throw BadRequest("\(name.rawValue) must be true or false, not \"\(String(decoding: value, as: UTF8.self))\"")
        }
    }
}
