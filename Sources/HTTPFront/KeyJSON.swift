import WireProtocol

/// How every answer that names a key writes it: `"key":<text>,"key_encoding":"utf8"` when its
/// bytes are valid UTF-8, else `"key":"<base64>","key_encoding":"base64"`. A JSON string cannot
/// carry bytes that are not UTF-8 (the single-key routes' Go-compatible messages turn each into
/// U+FFFD), so this is what lets a listed key go back into a request exactly (a transaction's
/// `key_encoding`, or the percent-encoded bytes in a URL).
enum KeyJSON {
    /// Appends the two members (no comma before or after).
    static func appendMembers(_ key: UnsafeRawBufferPointer, to body: inout [UInt8]) {
        body.append(contentsOf: keyName)
        if UTF8Validation.isValid(key) {
            JSONWriter.appendString(key, to: &body)
            body.append(contentsOf: utf8Encoding)
        } else {
            body.append(UInt8(ascii: "\""))
            Base64.encode(key, to: &body)
            body.append(UInt8(ascii: "\""))
            body.append(contentsOf: base64Encoding)
        }
    }

    static func appendMembers(_ key: [UInt8], to body: inout [UInt8]) {
        key.withUnsafeBytes { appendMembers($0, to: &body) }
    }

    private static let keyName = Array(#""key":"#.utf8)
    private static let utf8Encoding = Array(#","key_encoding":"utf8""#.utf8)
    private static let base64Encoding = Array(#","key_encoding":"base64""#.utf8)
}
