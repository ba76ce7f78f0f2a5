/// Writes JSON string literals byte-for-byte as Go's `json.Marshal` (and `json.Encoder`, whose
/// HTML escaping is on by default) writes a Go string, as of Go 1.22 (the seed's minimum):
///
/// - '"' and '\' as `\"` and `\\`; \b \f \n \r \t as such (Go 1.22 and later; older Go wrote \b
///   and \f as `\u0008` and `\u000c`); every other byte below 0x20 as `\u00XX` (lowercase hex);
/// - '<' '>' '&' as `\u003c` `\u003e` `\u0026`;
/// - U+2028 and U+2029 as `\u2028` and `\u2029`;
/// - each byte that does not begin a valid UTF-8 sequence as `\ufffd` (one per byte, as Go's
///   decoding loop advances one byte at a time over invalid input);
/// - everything else, DEL and valid non-ASCII UTF-8 included, as it is.
public enum JSONWriter {
    /// Appends `bytes` as a JSON string literal, quotes included. O(n).
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        let count = bytes.count
        var index = 0
        var runStart = 0
        while index < count {
            let byte = bytes[index]
            if byte < 0x80 {
                if isVerbatimASCII(byte) {
                    index &+= 1
                    continue
                }
                appendRun(bytes, runStart..<index, to: &buffer)
                appendEscape(of: byte, to: &buffer)
                index &+= 1
                runStart = index
                continue
            }
            let length = GoUTF8.sequenceLength(bytes, at: index)
            if length == 0 {
                appendRun(bytes, runStart..<index, to: &buffer)
                appendASCII("\\ufffd", to: &buffer)
                index &+= 1
                runStart = index
            } else if length == 3, byte == 0xE2, bytes[index + 1] == 0x80, bytes[index + 2] & 0xFE == 0xA8 {
                appendRun(bytes, runStart..<index, to: &buffer)
                appendASCII(bytes[index + 2] == 0xA8 ? "\\u2028" : "\\u2029", to: &buffer)
                index &+= 3
                runStart = index
            } else {
                index &+= length
            }
        }
        appendRun(bytes, runStart..<count, to: &buffer)
        buffer.append(UInt8(ascii: "\""))
    }

    /// Whether `appendString` writes `bytes` as they are (between the quotes): every byte is ASCII
    /// that Go does not escape. Then the literal is exactly `bytes.count + 2` bytes long.
    public static func isVerbatim(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte >= 0x80 || !isVerbatimASCII(byte) { return false }
        return true
    }

    /// Appends `string` (its UTF-8) as a JSON string literal, quotes included. O(n).
    public static func appendString(_ string: String, to buffer: inout [UInt8]) {
        var string = string
        string.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &buffer) }
    }

    /// ASCII that Go writes as it is: 0x20...0x7F except '"', '\', '<', '>' and '&'. Bit n of the
    /// pair is byte n.
    private static let verbatimLow: UInt64 = 0xFFFF_FFFF_0000_0000
        & ~(1 << 0x22 | 1 << 0x26 | 1 << 0x3C | 1 << 0x3E)
    private static let verbatimHigh: UInt64 = ~(1 << (0x5C - 64))

    @inline(__always)
    private static func isVerbatimASCII(_ byte: UInt8) -> Bool {
        byte < 64 ? (verbatimLow >> byte) & 1 != 0 : (verbatimHigh >> (byte &- 64)) & 1 != 0
    }

    private static func appendEscape(of byte: UInt8, to buffer: inout [UInt8]) {
        let letter: UInt8
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): letter = byte
        case 0x08: letter = UInt8(ascii: "b")
        case 0x0C: letter = UInt8(ascii: "f")
        case 0x0A: letter = UInt8(ascii: "n")
        case 0x0D: letter = UInt8(ascii: "r")
        case 0x09: letter = UInt8(ascii: "t")
        default:
            let digits = hexDigits.utf8Start
            buffer.append(contentsOf: [
                UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                digits[Int(byte >> 4)], digits[Int(byte & 0xF)],
            ])
            return
        }
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(letter)
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    private static func appendRun(_ bytes: UnsafeRawBufferPointer, _ run: Range<Int>, to buffer: inout [UInt8]) {
        guard !run.isEmpty else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[run]))
    }

    private static func appendASCII(_ text: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
}
