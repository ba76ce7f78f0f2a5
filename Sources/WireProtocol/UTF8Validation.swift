/// Whether bytes are valid UTF-8 by Go's rules (`utf8.Valid`: shortest forms only, no surrogates,
/// nothing above U+10FFFF). The HTTP listing writes a key as a JSON string only when this holds:
/// then `JSONWriter.appendString` writes it without a single U+FFFD, and a client's JSON decoder
/// gives back exactly the key's bytes; any other key is sent as base64.
public enum UTF8Validation {
    /// True when every byte of `bytes` belongs to a valid UTF-8 sequence. O(n); ASCII eight bytes
    /// at a time (keys are mostly ASCII).
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        var index = 0
        if let base = bytes.baseAddress {
            while count - index >= 8 {
                guard base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 else { break }
                index &+= 8
            }
        }
        while index < count {
            if bytes[index] < 0x80 {
                index &+= 1
                continue
            }
            let length = GoUTF8.sequenceLength(bytes, at: index)
            guard length > 0 else { return false }
            index &+= length
        }
        return true
    }
}
