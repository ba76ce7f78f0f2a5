/// Percent-decoding of a path segment (RFC 3986 §2.1), as Go's url.PathUnescape does it.
///
/// Keys are bytes, so the result is bytes: "%00" is a NUL, "%2F" a '/' that is part of the key
/// rather than a separator, "%FF" a byte that is not UTF-8. '+' stays '+' (it means a space only
/// in form-encoded queries, never in a path). A '%' that is not followed by two hex digits makes
/// the whole input invalid, as in Go, which answers 400: decoding it some other way would give
/// one URL two meanings.
public enum PercentDecoding {
    /// The bytes of `bytes` with every "%XX" (hex digits in either case) replaced by the byte XX;
    /// nil if a '%' is not followed by two hex digits. O(n); one allocation of at most n bytes.
    public static func decode(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        // On contiguous bytes (the router's ArraySlice): the generic iteration is not specialised
        // across the module boundary, and cost 3% of a PUT's CPU.
        if let decoded = bytes.withContiguousStorageIfAvailable({ decodeContiguous($0) }) { return decoded }
        return Array(bytes).withUnsafeBufferPointer { decodeContiguous($0) }
    }

    private static func decodeContiguous(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard input.contains(HTTPSyntax.percent) else { return Array(input) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            index += 1
            guard byte == HTTPSyntax.percent else {
                decoded.append(byte)
                continue
            }
            guard index + 1 < input.count, let high = HTTPSyntax.hexValue(input[index]),
                  let low = HTTPSyntax.hexValue(input[index + 1])
            else { return nil }
            decoded.append(high << 4 | low)
            index += 2
        }
        return decoded
    }
}
