import StorageEngine
import WireProtocol

/// The continuation token of a listing page (`token` in the answer, `token=` in the next request):
/// base64url without padding (RFC 4648 §5: no character that needs escaping in a query) of
///
///     0x01            the format, so that a later one can be told apart
///     0x00 | 0x01     the direction: ascending or reverse
///     key bytes       the last key of the page: the next page starts after it
///
/// Clients treat it as opaque. It holds no range: the next request repeats prefix/start/end, and
/// the engine continues after the key within that range. The direction is kept so that a token
/// used with the other `reverse` is refused instead of silently skipping or repeating keys.
enum ListToken {
    static let format: UInt8 = 0x01

    static func encode(after key: Key, reverse: Bool) -> [UInt8] {
        var raw: [UInt8] = [format, reverse ? 1 : 0]
        key.withUnsafeBytes { raw.append(contentsOf: $0) }
        var text: [UInt8] = []
        raw.withUnsafeBytes { Base64.encode($0, to: &text) }
        while text.last == UInt8(ascii: "=") { text.removeLast() }
        for index in text.indices {
            switch text[index] {
            case UInt8(ascii: "+"): text[index] = UInt8(ascii: "-")
            case UInt8(ascii: "/"): text[index] = UInt8(ascii: "_")
            default: break
            }
        }
        return text
    }

    /// The key to continue after, or why the token is not one this server issued.
    static func decode(_ token: [UInt8], reverse: Bool, maxKeySize: Int) throws(BadRequest) -> Key {
        var text: [UInt8] = []
        text.reserveCapacity(token.count + 3)
        for byte in token {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                text.append(byte)
            case UInt8(ascii: "-"): text.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): text.append(UInt8(ascii: "/"))
            default: throw BadRequest("malformed token: pass the token of the previous page as it was returned")
            }
        }
        guard text.count % 4 != 1 else { throw BadRequest("malformed token: pass the token of the previous page as it was returned") }
        while text.count % 4 != 0 { text.append(UInt8(ascii: "=")) }
        guard let raw = try? Base64.decode(text), raw.count >= 3, raw[0] == format, raw[1] <= 1 else {
            throw BadRequest("malformed token: pass the token of the previous page as it was returned")
        }
        guard (raw[1] == 1) == reverse else {
            throw BadRequest("the token continues a listing with reverse=\(raw[1] == 1); pass the same reverse as the first page")
        }
        guard raw.count - 2 <= maxKeySize else {
            throw BadRequest("malformed token: its key is longer than any key can be")
        }
        return Key(raw[2...])
    }
}
