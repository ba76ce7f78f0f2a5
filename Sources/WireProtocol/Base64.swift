/// Base64 with the standard alphabet (A–Z a–z 0–9 + /) and '=' padding: Go's
/// `base64.StdEncoding`, the encoding of values in the HTTP API.
///
/// Decoding follows Go's `StdEncoding.DecodeString` to the byte, error offsets included, so a
/// client sees the same verdicts from both servers:
///
/// 1. The input is read in groups of four alphabet characters; '\r' and '\n' anywhere are skipped
///    (they count for offsets but not for groups).
/// 2. A group may end early with padding: two characters then "==", or three then "=". Only '\r'
///    and '\n' may follow the padding.
/// 3. The input must end on a group boundary: padding is required (`Base64Error.badLength`).
/// 4. Any other character, a misplaced '=', or data after the padding is
///    `Base64Error.illegalCharacter(offset:)` with the offset Go reports.
/// 5. Non-zero bits left over in the last group ("YR==") are dropped, not refused: Go's
///    `StdEncoding` is not `Strict()`.
public enum Base64 {
    /// The length of the encoding of `byteCount` bytes: four characters per started group of three.
    /// `byteCount >= 0`.
    @inlinable
    public static func encodedCount(of byteCount: Int) -> Int {
        byteCount / 3 * 4 + (byteCount % 3 == 0 ? 0 : 4)
    }

    /// The most bytes an input of `characterCount` characters can decode to (Go's `DecodedLen`).
    @inlinable
    public static func maximumDecodedCount(of characterCount: Int) -> Int {
        characterCount / 4 * 3
    }

    /// Appends the encoding of `bytes` to `buffer`. O(n).
    public static func encode(_ bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
        let outputCount = encodedCount(of: bytes.count)
        guard outputCount > 0 else { return }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: outputCount))
        buffer.withUnsafeMutableBufferPointer { output in
            encode(bytes, into: output.baseAddress! + start)
        }
    }

    /// The encoding of `bytes`. O(n).
    public static func encode(_ bytes: [UInt8]) -> String {
        let outputCount = encodedCount(of: bytes.count)
        return bytes.withUnsafeBytes { input in
            String(unsafeUninitializedCapacity: outputCount) { output in
                if outputCount > 0 { encode(input, into: output.baseAddress!) }
                return outputCount
            }
        }
    }

    /// Decodes `text` as Go's `StdEncoding.DecodeString` does (see the type's comment). O(n); the
    /// result is allocated once, at most `maximumDecodedCount(of: text.count)` bytes.
    public static func decode(_ text: some Collection<UInt8>) throws(Base64Error) -> [UInt8] {
        let result = text.withContiguousStorageIfAvailable { decodeContiguous($0) }
        if let result { return try result.get() }
        return try Array(text).withUnsafeBufferPointer { decodeContiguous($0) }.get()
    }

    /// `decode(_:)` on contiguous bytes.
    private static func decodeContiguous(_ input: UnsafeBufferPointer<UInt8>) -> Result<[UInt8], Base64Error> {
        let capacity = maximumDecodedCount(of: input.count)
        // Never `Array(unsafeUninitializedCapacity: 0)`: it writes the shared empty array's
        // count, which TSan reports when two threads do it (see `readDescriptor` in FileStore).
        guard capacity > 0 else {
            return Base64Tables.decoding.withUnsafeBufferPointer { table in
                decode(input, into: UnsafeMutableBufferPointer(start: nil, count: 0), table: table).map { _ in [] }
            }
        }
        var failure: Base64Error?
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { output, count in
            Base64Tables.decoding.withUnsafeBufferPointer { table in
                switch decode(input, into: output, table: table) {
                case .success(let written): count = written
                case .failure(let error): failure = error
                }
            }
        }
        if let failure { return .failure(failure) }
        return .success(bytes)
    }

    // MARK: - Encoding

    /// Writes the `encodedCount(of: input.count)` characters of `input`'s encoding at `output`.
    private static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) {
        let alphabet = Base64Tables.alphabet.utf8Start
        var inIndex = 0
        var outIndex = 0
        let count = input.count
        while count - inIndex >= 3 {
            let group = UInt32(input[inIndex]) << 16 | UInt32(input[inIndex + 1]) << 8 | UInt32(input[inIndex + 2])
            output[outIndex] = alphabet[Int(group >> 18)]
            output[outIndex + 1] = alphabet[Int((group >> 12) & 0x3F)]
            output[outIndex + 2] = alphabet[Int((group >> 6) & 0x3F)]
            output[outIndex + 3] = alphabet[Int(group & 0x3F)]
            inIndex &+= 3
            outIndex &+= 4
        }
        let remaining = count - inIndex
        guard remaining > 0 else { return }
        var group = UInt32(input[inIndex]) << 16
        if remaining == 2 { group |= UInt32(input[inIndex + 1]) << 8 }
        output[outIndex] = alphabet[Int(group >> 18)]
        output[outIndex + 1] = alphabet[Int((group >> 12) & 0x3F)]
        output[outIndex + 2] = remaining == 2 ? alphabet[Int((group >> 6) & 0x3F)] : Base64Tables.padding
        output[outIndex + 3] = Base64Tables.padding
    }

    // MARK: - Decoding

    /// Decodes `input` into `output` (room for `maximumDecodedCount(of: input.count)` bytes) and
    /// returns the number of bytes written. A group is written only once its four characters
    /// (padding included) have been read, so at most three bytes per four input bytes are written.
    private static func decode(
        _ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>,
        table: UnsafeBufferPointer<UInt8>
    ) -> Result<Int, Base64Error> {
        let count = input.count
        var index = 0
        var written = 0
        while index < count {
            // Fast path: four alphabet characters (no padding, no line breaks).
            if count - index >= 4 {
                let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                let c = table[Int(input[index + 2])], d = table[Int(input[index + 3])]
                if (a | b | c | d) & Base64Tables.notInAlphabet == 0 {
                    output[written] = a << 2 | b >> 4
                    output[written + 1] = b << 4 | c >> 2
                    output[written + 2] = c << 6 | d
                    written &+= 3
                    index &+= 4
                    continue
                }
            }
            // One group the slow way, exactly as Go's decodeQuantum.
            var values: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
            var filled = 0
            var trailingDataAt: Int?
            group: while filled < 4 {
                guard index < count else {
                    if filled == 0 { return .success(written) }
                    return .failure(.badLength)
                }
                let character = input[index]
                index &+= 1
                let value = table[Int(character)]
                if value & Base64Tables.notInAlphabet == 0 {
                    switch filled {
                    case 0: values.0 = value
                    case 1: values.1 = value
                    case 2: values.2 = value
                    default: values.3 = value
                    }
                    filled &+= 1
                    continue
                }
                if character == UInt8(ascii: "\n") || character == UInt8(ascii: "\r") { continue }
                guard character == Base64Tables.padding, filled >= 2 else {
                    return .failure(.illegalCharacter(offset: index - 1))
                }
                if filled == 2 {
                    // "==" is required; the first '=' has been read.
                    index = skipLineBreaks(input, from: index)
                    guard index < count else { return .failure(.badLength) }
                    // Go reports the byte before the one that should have been '='.
                    guard input[index] == Base64Tables.padding else {
                        return .failure(.illegalCharacter(offset: index - 1))
                    }
                    index &+= 1
                }
                index = skipLineBreaks(input, from: index)
                if index < count { trailingDataAt = index }
                break group
            }
            let group = UInt32(values.0) << 18 | UInt32(values.1) << 12 | UInt32(values.2) << 6 | UInt32(values.3)
            // `filled` characters carry filled * 6 bits: whole bytes filled - 1 (filled >= 2 here).
            output[written] = UInt8(truncatingIfNeeded: group >> 16)
            if filled >= 3 { output[written + 1] = UInt8(truncatingIfNeeded: group >> 8) }
            if filled == 4 { output[written + 2] = UInt8(truncatingIfNeeded: group) }
            written &+= filled - 1
            if let trailingDataAt { return .failure(.illegalCharacter(offset: trailingDataAt)) }
        }
        return .success(written)
    }

    private static func skipLineBreaks(_ input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var index = start
        while index < input.count, input[index] == UInt8(ascii: "\n") || input[index] == UInt8(ascii: "\r") {
            index &+= 1
        }
        return index
    }
}

/// Why base64 input was refused.
public enum Base64Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// A character outside the alphabet, a misplaced '=', or data after the padding, at this byte
    /// offset of the input (the offset Go's `CorruptInputError` reports).
    case illegalCharacter(offset: Int)
    /// The input ends inside a group of four characters: padding is missing or the data is cut.
    case badLength

    public var description: String {
        switch self {
        case .illegalCharacter(let offset): "illegal base64 data at input byte \(offset)"
        case .badLength: "illegal base64 data: the length is not a multiple of 4 (padding is required)"
        }
    }
}

/// The lookup tables: the alphabet, and its inverse with every other byte marked.
enum Base64Tables {
    static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    static let padding = UInt8(ascii: "=")
    /// Set in `decoding` for every byte outside the alphabet (alphabet values are below 64).
    static let notInAlphabet: UInt8 = 0x80

    /// Byte → its 6-bit value, or `notInAlphabet`.
    static let decoding: [UInt8] = {
        var table = [UInt8](repeating: notInAlphabet, count: 256)
        let letters = UnsafeBufferPointer(start: alphabet.utf8Start, count: alphabet.utf8CodeUnitCount)
        for (value, character) in letters.enumerated() { table[Int(character)] = UInt8(value) }
        return table
    }()
}
