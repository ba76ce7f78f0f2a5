extension Array where Element == UInt8 {
    /// Appends the UTF-8 bytes of a string literal. A `StaticString` lives in the binary, so this
    /// costs a copy and nothing else; appending a `static let` array also retains and releases
    /// its storage (atomically), which the hot answers' encoders did several times per request.
    @inline(__always)
    mutating func appendLiteral(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }
}
