/// The body of `PUT /v1/kv/{key}`: `{"value": "...", "encoding": "..."}`.
public struct PutRequestBody: Sendable, Equatable {
    /// "" when absent or null (Go leaves the zero value).
    public var value: String
    /// "" when absent or null.
    public var encoding: String
    /// Where `value` is not what was sent: the first invalid UTF-8 byte or unpaired surrogate
    /// escape in its JSON string, which Go's unquoting (and so `value`) replaces by U+FFFD. Nil
    /// when `value` holds exactly the text sent. (`"encoding":"utf-8"` refuses such a value.)
    public var valueDefect: JSONStringDefect?

    /// A body with these fields; the defaults are what an empty object `{}` decodes to.
    public init(value: String = "", encoding: String = "", valueDefect: JSONStringDefect? = nil) {
        self.value = value
        self.encoding = encoding
        self.valueDefect = valueDefect
    }
}
