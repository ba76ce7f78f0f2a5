import Reactor
import StorageEngine
import WireProtocol

/// Answers one request. Holds what is needed to fill the request's slot from any thread.
struct Responder: Sendable {
    let connection: HTTPConnection
    let slot: Int
    let request: HTTPRequest
    let started: ContinuousClock.Instant

    var headOnly: Bool { request.method == "HEAD" }

    /// Sends `response` for this request; callable from any thread, exactly once.
    func send(_ response: HTTPResponse, route: RouteName) {
        if connection.loop.isOnLoop {
            deliver(response, route: route)
        } else {
            connection.loop.execute { [self] in deliver(response, route: route) }
        }
    }

    /// Whether this request's answer may be written as a plain keep-alive HTTP/1.1 answer with a
    /// body (`sendEncoded`): no "Connection" field to add, not a HEAD.
    var takesPlainAnswer: Bool { request.keepAlive && request.version == .http1_1 && request.method != "HEAD" }

    /// Sends an answer already encoded whole (head and body) for a request that
    /// `takesPlainAnswer`: the GET route's fast path (`KeyValueHandlers.encodedValueAnswer`),
    /// which builds no `HTTPResponse`. Callable from any thread, exactly once.
    func sendEncoded(_ bytes: [UInt8], status: Int, route: RouteName) {
        assert(takesPlainAnswer, "an encoded answer for a request that needs its own fields")
        if connection.loop.isOnLoop {
            deliver(encoded: bytes, status: status, route: route, close: false)
        } else {
            connection.loop.execute { [self] in deliver(encoded: bytes, status: status, route: route, close: false) }
        }
    }

    /// Sends the answer to an acknowledged write of one key: 200 `{"ok":true}` with
    /// `X-Revision: <revision>` and, for a PUT, `ETag: "<revision>"` (the key's new mod revision,
    /// ready for the next If-Match): `send(KeyValueHandlers.written(…))`, with the usual case's
    /// head built from bytes encoded once instead of through `HTTPResponse` (the PUT route is the
    /// benchmarked one). The two give the same bytes. (The on-loop test is written out here and
    /// in `send` rather than shared through a closure: that closure would be allocated per answer.)
    func sendWritten(revision: UInt64, etag: Bool, route: RouteName) {
        guard takesPlainAnswer else {
            return send(KeyValueHandlers.written(revision: revision, etag: etag), route: route)
        }
        let encoded = Responder.encodedWritten(revision: revision, etag: etag)
        if connection.loop.isOnLoop {
            deliver(encoded: encoded, status: 200, route: route, close: false)
        } else {
            connection.loop.execute { [self] in deliver(encoded: encoded, status: 200, route: route, close: false) }
        }
    }

    /// `KeyValueHandlers.written(revision:etag:)` as a keep-alive HTTP/1.1 answer, encoded.
    static func encodedWritten(revision: UInt64, etag: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Responder.writtenStart.utf8CodeUnitCount + Responder.writtenEnd.utf8CodeUnitCount + 64)
        bytes.appendLiteral(Responder.writtenStart)
        if etag {
            bytes.appendLiteral(Responder.etagName)
            DecimalText.append(revision, to: &bytes)
            bytes.appendLiteral(Responder.etagEnd)
        }
        bytes.appendLiteral(Responder.revisionName)
        DecimalText.append(revision, to: &bytes)
        bytes.appendLiteral(Responder.writtenEnd)
        return bytes
    }

    // `KeyValueHandlers.written` as a keep-alive HTTP/1.1 answer (`sendWritten`), in the order
    // `HTTPResponseEncoder` writes it: status line, Content-Type, ETag, X-Revision,
    // Content-Length, the blank line, the body.
    // (`writtenEnd` spells out `KeyValueHandlers.ok`'s body and its length; PlainAnswerTests
    // holds the two together.)
    private static let writtenStart: StaticString = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    private static let etagName: StaticString = "ETag: \""
    private static let etagEnd: StaticString = "\"\r\n"
    private static let revisionName: StaticString = "X-Revision: "
    private static let writtenEnd: StaticString = "\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\n"

    /// Sends a 200 GET answer whose body is `bodyStart`, `value` in base64, and
    /// `StreamedValueAnswer.suffix`, produced a chunk at a time as the socket drains (a large
    /// value); `response` gives the status and fields (its body is ignored). A HEAD gets the
    /// head alone. Callable from any thread, exactly once.
    func sendStreamed(_ response: HTTPResponse, bodyStart: [UInt8], value: StoredValue, route: RouteName) {
        if connection.loop.isOnLoop {
            deliverStreamed(response, bodyStart: bodyStart, value: value, route: route)
        } else {
            connection.loop.execute { [self] in deliverStreamed(response, bodyStart: bodyStart, value: value, route: route) }
        }
    }

    /// On the loop's thread: records the answer, encodes it and fills the request's slot.
    private func deliver(_ response: HTTPResponse, route: RouteName) {
        let close = !request.keepAlive
        let response = withConnectionFields(response, close: close)
        deliver(encoded: connection.encode(response, headOnly: headOnly, close: close), status: response.status, route: route, close: close)
    }

    private func deliverStreamed(_ response: HTTPResponse, bodyStart: [UInt8], value: StoredValue, route: RouteName) {
        let close = !request.keepAlive
        let response = withConnectionFields(response, close: close)
        var head: [UInt8] = []
        let bodyCount = StreamedValueAnswer.bodyCount(bodyStart: bodyStart.count, valueCount: value.count)
        HTTPResponseEncoder.encodeHead(response, contentLength: bodyCount, closeConnection: close, to: &head)
        if headOnly { return deliver(encoded: head, status: response.status, route: route, close: close) }
        connection.recordAnswer(route: route, method: request.method, status: response.status, started: started)
        connection.complete(slot: slot, stream: StreamedValueAnswer(head: head, bodyStart: bodyStart, value: value), closeAfter: close)
    }

    /// `response` with the fields the request's connection needs besides "Connection: close",
    /// which the encoder writes.
    @inline(__always)
    private func withConnectionFields(_ response: HTTPResponse, close: Bool) -> HTTPResponse {
        guard !close && request.version == .http1_0 else { return response }
        var response = response
        response.headers.append(("Connection", "keep-alive"))  // HTTP/1.0 closes unless told
        return response
    }

    private func deliver(encoded bytes: [UInt8], status: Int, route: RouteName, close: Bool) {
        connection.recordAnswer(route: route, method: request.method, status: status, started: started)
        connection.complete(slot: slot, bytes: bytes, closeAfter: close)
    }
}
