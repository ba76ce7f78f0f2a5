import StorageEngine
import WireProtocol

/// The preconditions of PUT and DELETE /v1/kv/{key} (RFC 9110 §13.1.1, §13.1.2), as one engine
/// condition checked by the committer against the state it writes on (so of two writers racing on
/// one revision exactly one wins):
///
///     If-Match: "<rev>"       the key exists and was last modified at <rev> (its GET's ETag)
///     If-Match: *             the key exists
///     If-None-Match: *        the key does not exist (create only)
///
/// ETags here are strong and always a mod revision in quotes, so anything else is refused (400)
/// rather than compared: a weak tag (W/"3", which RFC 9110 never lets If-Match match), a tag
/// without quotes, one that is not a revision, several tags or several fields, If-None-Match with
/// a tag (the engine has no "not this revision" condition), and both fields together. A failed
/// condition is a 412 (`PreconditionAnswer`); a DELETE with If-Match of a missing key too.
enum ConditionalHeaders {
    /// The condition the request's fields ask for (nil: none); throws the message of its 400.
    static func condition(_ headers: HTTPHeaders) throws(BadRequest) -> WriteCondition? {
        let matches = headers.values("If-Match")
        let noneMatches = headers.values("If-None-Match")
        if matches.isEmpty && noneMatches.isEmpty { return nil }
        guard matches.count + noneMatches.count == 1 else {
            if !matches.isEmpty && !noneMatches.isEmpty {
                throw BadRequest("If-Match and If-None-Match cannot be combined: send one")
            }
            throw BadRequest("\(matches.isEmpty ? "If-None-Match" : "If-Match") given more than once: send one field with one value")
        }
        if let match = matches.first {
            let value = trimmed(match)
            if value == "*" { return .present }
            return .modRevision(try revision(value, field: "If-Match"))
        }
        let value = trimmed(noneMatches[0])
        guard value == "*" else {
            throw BadRequest("If-None-Match supports only * (create only), not \(value)")
        }
        return .absent
    }

    /// The revision in a strong entity tag `"<digits>"`.
    private static func revision(_ value: String, field: String) throws(BadRequest) -> UInt64 {
        let bytes = Array(value.utf8)
        if bytes.starts(with: Array("W/".utf8)) {
            throw BadRequest("\(field): weak entity tags (W/…) are not accepted; send the ETag exactly as GET returned it")
        }
        if bytes.contains(UInt8(ascii: ",")) {
            throw BadRequest("\(field): send one entity tag, not a list")
        }
        guard bytes.count >= 3, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else {
            throw BadRequest("\(field) must be * or an entity tag in double quotes, such as \"42\" (the ETag of a GET), not \(value)")
        }
        let digits = bytes.dropFirst().dropLast()
        guard digits.count <= 20, digits.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }),
              digits.first != UInt8(ascii: "0") || digits.count == 1,
              let revision = UInt64(String(decoding: digits, as: UTF8.self))
        else {
            throw BadRequest("\(field): \(value) is not an entity tag of this server (a revision in double quotes, such as \"42\")")
        }
        return revision
    }

    /// Without OWS around it (spaces and tabs).
    private static func trimmed(_ value: String) -> String {
        let bytes = Array(value.utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
