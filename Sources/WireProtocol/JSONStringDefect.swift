/// Where a JSON string's text could not be kept as sent (Go's unquoting puts U+FFFD there).
public enum JSONStringDefect: Sendable, Equatable, CustomStringConvertible {
    /// `byte`, at `offset` in the body, does not begin a valid UTF-8 sequence (or begins an
    /// overlong one, or one of a surrogate or of a value above U+10FFFF).
    case invalidUTF8(offset: Int, byte: UInt8)
    /// The `\u` escape at `offset` is a surrogate that is not half of a pair (`\ud800` alone).
    case unpairedSurrogate(offset: Int, codeUnit: UInt16)

    public var description: String {
        switch self {
        case .invalidUTF8(let offset, let byte):
            "invalid UTF-8 byte 0x\(Self.hex(UInt16(byte), digits: 2)) at byte \(offset)"
        case .unpairedSurrogate(let offset, let codeUnit):
            "unpaired surrogate \\u\(Self.hex(codeUnit, digits: 4)) at byte \(offset)"
        }
    }

    private static func hex(_ value: UInt16, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
