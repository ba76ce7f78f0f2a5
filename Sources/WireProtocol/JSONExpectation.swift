/// What the reader was looking for where a body went wrong.
public enum JSONExpectation: Sendable, Equatable, CustomStringConvertible {
    /// The start of a value (Go: "looking for beginning of value").
    case value
    /// A string opening an object key (Go: "looking for beginning of object key string").
    case objectKey
    /// ':' after an object key (Go: "after object key").
    case colon
    /// ',' or '}' after an object member (Go: "after object key:value pair").
    case commaOrObjectEnd
    /// ',' or ']' after an array element (Go: "after array element").
    case commaOrArrayEnd
    /// A character of a string or its closing quote; raw control characters are not allowed
    /// (Go: "in string literal").
    case stringCharacter
    /// One of `" \ / b f n r t u` after a backslash (Go: "in string escape code").
    case escapeCharacter
    /// A hexadecimal digit of a \u escape (Go: "in \u hexadecimal character escape").
    case hexDigit
    /// A digit of a number (Go: "in numeric literal" and its variants).
    case digit
    /// The rest of the literal true, false or null.
    case literal(String)

    public var description: String {
        switch self {
        case .value: "the start of a value"
        case .objectKey: "a string (an object key)"
        case .colon: "':' after an object key"
        case .commaOrObjectEnd: "',' or '}' after an object member"
        case .commaOrArrayEnd: "',' or ']' after an array element"
        case .stringCharacter: "a string character or the closing '\"' (control characters must be escaped)"
        case .escapeCharacter: "an escape character after '\\' (one of \" \\ / b f n r t u)"
        case .hexDigit: "a hexadecimal digit in a \\u escape"
        case .digit: "a digit"
        case .literal(let word): "the literal \(word)"
        }
    }
}
