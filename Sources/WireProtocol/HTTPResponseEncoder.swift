/// HTTP/1.1 responses and their encoding (RFC 9112 §4, §6).
///
/// Every response is framed by Content-Length, which the encoder writes itself from the body, so
/// the framing can never disagree with the bytes that follow: a client that pipelines reads each
/// response exactly. (No chunked transfer coding: a large body is produced a chunk at a time by
/// its sender, after a head written by `encodeHead` with the body's length known up front.)

/// A response before encoding: a status, extra header fields, and the body.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// Extra fields, written in this order. Content-Length is the encoder's (a Content-Length
    /// given here is not written), and so is "Connection: close".
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: HTTPResponse, rhs: HTTPResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Writes responses as bytes.
public enum HTTPResponseEncoder {
    /// Appends the response to `buffer`:
    ///
    ///     HTTP/1.1 <status> <reason>\r\n
    ///     <name>: <value>\r\n                  each of response.headers
    ///     Content-Length: <body.count>\r\n
    ///     Connection: close\r\n                if closeConnection
    ///     \r\n
    ///     <body>                               unless headOnly
    ///
    /// `headOnly` answers a HEAD request: the same fields as the GET, Content-Length included,
    /// and no body (RFC 9110 §9.3.2). What must stay true:
    /// - The head cannot be split: a CR, LF or NUL inside a given name or value is written as a
    ///   space, so no header value can start a new field or end the head (response splitting).
    /// - Exactly one Content-Length, the encoder's: a given "Content-Length" field is skipped.
    /// - 1xx and 204 responses get neither Content-Length nor a body (RFC 9110 §8.6 forbids it);
    ///   their body must be empty.
    ///
    /// O(head + body); appends only, so several responses can share one write buffer.
    public static func encode(
        _ response: HTTPResponse, headOnly: Bool, closeConnection: Bool, to buffer: inout [UInt8]
    ) {
        let hasContent = appendHead(response, contentLength: response.body.count, closeConnection: closeConnection, to: &buffer)
        if hasContent && !headOnly {
            buffer.append(contentsOf: response.body)
        }
    }

    /// Appends the head alone, with `Content-Length: contentLength`, for a body the caller sends
    /// itself after it (a large answer produced a chunk at a time). `response.body` is ignored.
    /// The head is exactly the one `encode` writes for a body of `contentLength` bytes; the same
    /// rules hold (a 1xx or 204 gets no Content-Length, and then no body may follow).
    public static func encodeHead(
        _ response: HTTPResponse, contentLength: Int, closeConnection: Bool, to buffer: inout [UInt8]
    ) {
        appendHead(response, contentLength: contentLength, closeConnection: closeConnection, to: &buffer)
    }

    /// The head (see `encode`); returns whether the status has content (a Content-Length).
    @inline(__always) @discardableResult
    private static func appendHead(
        _ response: HTTPResponse, contentLength: Int, closeConnection: Bool, to buffer: inout [UInt8]
    ) -> Bool {
        buffer.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(response.status, to: &buffer)
        buffer.append(HTTPSyntax.space)
        buffer.append(contentsOf: reasonPhrase(response.status).utf8)
        appendLineEnd(to: &buffer)
        for (name, value) in response.headers where !HTTPSyntax.equalsIgnoringCase(name, "content-length") {
            appendFieldText(name, to: &buffer)
            buffer.append(HTTPSyntax.colon)
            buffer.append(HTTPSyntax.space)
            appendFieldText(value, to: &buffer)
            appendLineEnd(to: &buffer)
        }
        let hasContent = !(100...199).contains(response.status) && response.status != 204
        if hasContent {
            buffer.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(contentLength, to: &buffer)
            appendLineEnd(to: &buffer)
        }
        if closeConnection {
            buffer.append(contentsOf: "Connection: close\r\n".utf8)
        }
        appendLineEnd(to: &buffer)
        return hasContent
    }

    /// The response to "Expect: 100-continue": the client may send the body now.
    public static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The reason phrase of `status` (RFC 9110 §15), "Unknown" for a code not listed here.
    /// Clients ignore the phrase; it is for people reading traces.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Payload Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 421: "Misdirected Request"
        case 422: "Unprocessable Content"
        case 426: "Upgrade Required"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        case 507: "Insufficient Storage"
        default: "Unknown"
        }
    }

    private static func appendLineEnd(to buffer: inout [UInt8]) {
        buffer.append(HTTPSyntax.carriageReturn)
        buffer.append(HTTPSyntax.lineFeed)
    }

    /// Appends `value` in decimal (a minus sign first if negative).
    private static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        let magnitude = value.magnitude
        var divisor: UInt = 1
        while divisor <= magnitude / 10 { divisor *= 10 }
        repeat {
            buffer.append(UInt8(ascii: "0") + UInt8(magnitude / divisor % 10))
            divisor /= 10
        } while divisor > 0
    }

    /// Appends a field name or value, with CR, LF and NUL written as spaces (see `encode`).
    private static func appendFieldText(_ text: String, to buffer: inout [UInt8]) {
        guard text.utf8.contains(where: isForbiddenInField) else {
            buffer.append(contentsOf: text.utf8)
            return
        }
        for byte in text.utf8 {
            buffer.append(isForbiddenInField(byte) ? HTTPSyntax.space : byte)
        }
    }

    private static func isForbiddenInField(_ byte: UInt8) -> Bool {
        byte == HTTPSyntax.carriageReturn || byte == HTTPSyntax.lineFeed || byte == 0
    }
}
