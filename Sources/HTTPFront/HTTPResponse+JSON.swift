import WireProtocol

extension HTTPResponse {
    /// A JSON response whose body is `{"error":"…"}` and a newline, as the Go server writes it.
    static func json(status: Int, error message: String) -> HTTPResponse {
        json(status: status, errorBytes: Array(message.utf8))
    }

    /// The same, for a message that holds raw bytes (a key, which need not be UTF-8): JSONWriter
    /// escapes them as Go does.
    static func json(status: Int, errorBytes message: [UInt8]) -> HTTPResponse {
        var body: [UInt8] = Array(#"{"error":"#.utf8)
        message.withUnsafeBytes { JSONWriter.appendString($0, to: &body) }
        body.append(contentsOf: Array("}\n".utf8))
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: body)
    }

    /// A JSON response with a prepared body (the caller includes the trailing newline).
    static func json(status: Int, body: [UInt8], headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }
}
