import StorageEngine
import WireProtocol

/// GET, PUT, DELETE /v1/kv/{key} and POST /v1/checkpoint.
///
/// A GET answers `ETag: "<mod revision>"`; a PUT or DELETE may carry If-Match or If-None-Match
/// (`ConditionalHeaders`: 412 when it does not hold, `PreconditionAnswer`), and its 200 carries
/// `X-Revision: <revision>` (a PUT also `ETag`). The bodies are the Go server's, unchanged.
///
/// Reads answer on the loop's thread (a shard lock, never the disk). Writes are handed to the
/// engine at the end of the loop's iteration, with the others read in it, which never blocks on
/// a slow sync; the engine calls back once the write is durable, and the response goes out
/// then: every 200 to a PUT or DELETE is durable. (The engine may commit a loop's writes on the
/// loop's own thread when its committer is idle: `HTTPConnectionFront`, `CommitPipeline`.)
struct KeyValueHandlers: Sendable {
    let database: Database
    let role: any ServerRole
    /// The engine's key limit (read once: GET checks it on every request).
    let maxKeySize: Int

    init(database: Database, role: any ServerRole) {
        self.database = database
        self.role = role
        self.maxKeySize = database.options.limits.maxKeySize
    }

    func handle(_ request: HTTPRequest, key rawKey: ArraySlice<UInt8>, _ responder: Responder) {
        guard let keyBytes = PercentDecoding.decode(rawKey) else {
            return responder.send(.json(status: 400, error: "invalid URL escape in key"), route: .kv)
        }
        guard !keyBytes.isEmpty else {
            return responder.send(.json(status: 400, error: "empty key"), route: .kv)
        }
        let key = Key(keyBytes)
        switch request.method {
        case "GET", "HEAD":
            // A key over the limit cannot exist: the same 400 as its PUT gets, not a 404.
            guard keyBytes.count <= maxKeySize else {
                return responder.send(KeyValueHandlers.failure(.keyTooLarge(size: keyBytes.count, limit: maxKeySize)), route: .kv)
            }
            get(key, keyBytes: keyBytes, responder)
        case "PUT": put(key, request, responder)
        default: delete(key, request, responder)
        }
    }

    /// Values larger than this are streamed (`StreamedValueAnswer`); smaller ones are encoded
    /// whole, at once.
    static let streamedValueThreshold = 64 << 10

    /// What a GET's lookup produced, built under the shard's lock and sent after it.
    private enum GetAnswer {
        case encoded([UInt8], status: Int)
        case response(HTTPResponse)
        case stream
    }

    private func get(_ key: Key, keyBytes: [UInt8], _ responder: Responder) {
        let plain = responder.takesPlainAnswer
        do {
            let answer: GetAnswer = try database.withEntry(for: key) { value, modRevision in
                guard let value else {
                    if plain, let encoded = KeyValueHandlers.encodedNotFoundAnswer(keyBytes: keyBytes) {
                        return .encoded(encoded, status: 404)
                    }
                    return .response(.json(status: 404, errorBytes: Array("key not found: ".utf8) + keyBytes))
                }
                guard value.count <= KeyValueHandlers.streamedValueThreshold else { return .stream }
                if plain, let encoded = KeyValueHandlers.encodedValueAnswer(keyBytes: keyBytes, value: value, modRevision: modRevision) {
                    return .encoded(encoded, status: 200)
                }
                var body: [UInt8] = []
                body.reserveCapacity(48 + keyBytes.count * 2 + Base64.encodedCount(of: value.count))
                body.appendLiteral(KeyValueHandlers.bodyStart)
                keyBytes.withUnsafeBytes { JSONWriter.appendString($0, to: &body) }
                body.appendLiteral(KeyValueHandlers.bodyValue)
                Base64.encode(value, to: &body)
                body.appendLiteral(KeyValueHandlers.bodyEnd)
                return .response(.json(status: 200, body: body, headers: [KeyValueHandlers.etag(modRevision)]))
            }
            switch answer {
            case .encoded(let bytes, let status): responder.sendEncoded(bytes, status: status, route: .kv)
            case .response(let response): responder.send(response, route: .kv)
            case .stream: try streamGet(key, keyBytes: keyBytes, responder)
            }
        } catch {
            responder.send(.json(status: 503, error: "\(error)"), route: .kv)
        }
    }

    // A GET's body: `{"key":<key>,"value":"<base64>","encoding":"base64"}` and a newline.
    private static let bodyStart: StaticString = #"{"key":"#
    private static let bodyValue: StaticString = #","value":""#
    private static let bodyEnd: StaticString = "\",\"encoding\":\"base64\"}\n"
    // The head of a 200 GET answer as `HTTPResponseEncoder` writes it for `.json(status: 200,
    // body:, headers: [etag])` on a keep-alive HTTP/1.1 connection: status line, Content-Type,
    // ETag, Content-Length, the blank line.
    private static let headStart: StaticString = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \""
    private static let headLength: StaticString = "\"\r\nContent-Length: "
    private static let headEnd: StaticString = "\r\n\r\n"

    /// The whole 200 answer to a GET (head and body) in one buffer, the bytes `send` would write
    /// for the same answer (a test compares them), built with no `HTTPResponse`, header tuples
    /// or field scan: the route wrk and users hit most. Nil for a key that JSON must escape (its
    /// literal's length is not its byte count); such a GET takes the general path.
    static func encodedValueAnswer(keyBytes: [UInt8], value: UnsafeRawBufferPointer, modRevision: UInt64) -> [UInt8]? {
        guard keyBytes.withUnsafeBytes({ JSONWriter.isVerbatim($0) }) else { return nil }
        let bodyCount = bodyStart.utf8CodeUnitCount + keyBytes.count + 2 + bodyValue.utf8CodeUnitCount
            + Base64.encodedCount(of: value.count) + bodyEnd.utf8CodeUnitCount
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headStart.utf8CodeUnitCount + 20 + headLength.utf8CodeUnitCount + 10 + headEnd.utf8CodeUnitCount + bodyCount)
        bytes.appendLiteral(headStart)
        DecimalText.append(modRevision, to: &bytes)
        bytes.appendLiteral(headLength)
        DecimalText.append(bodyCount, to: &bytes)
        bytes.appendLiteral(headEnd)
        bytes.appendLiteral(bodyStart)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: keyBytes)
        bytes.append(UInt8(ascii: "\""))
        bytes.appendLiteral(bodyValue)
        Base64.encode(value, to: &bytes)
        bytes.appendLiteral(bodyEnd)
        return bytes
    }

    // The 404 answer to a GET of a missing key, as `HTTPResponseEncoder` writes it for
    // `.json(status: 404, errorBytes: "key not found: " + key)`: status line, Content-Type,
    // Content-Length, the blank line, `{"error":"key not found: <key>"}` and a newline.
    private static let notFoundHead: StaticString = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: "
    private static let notFoundBodyStart: StaticString = #"{"error":"key not found: "#
    private static let notFoundBodyEnd: StaticString = "\"}\n"

    /// The whole 404 answer to a GET of a missing key in one buffer, the bytes `send` would
    /// write (a test compares them): a benchmark's random keys miss often, and the general
    /// path's `HTTPResponse` and field scan cost a missed GET 2% more CPU than a hit. Nil for a
    /// key that JSON must escape.
    static func encodedNotFoundAnswer(keyBytes: [UInt8]) -> [UInt8]? {
        guard keyBytes.withUnsafeBytes({ JSONWriter.isVerbatim($0) }) else { return nil }
        let bodyCount = notFoundBodyStart.utf8CodeUnitCount + keyBytes.count + notFoundBodyEnd.utf8CodeUnitCount
        var bytes: [UInt8] = []
        bytes.reserveCapacity(notFoundHead.utf8CodeUnitCount + 10 + headEnd.utf8CodeUnitCount + bodyCount)
        bytes.appendLiteral(notFoundHead)
        DecimalText.append(bodyCount, to: &bytes)
        bytes.appendLiteral(headEnd)
        bytes.appendLiteral(notFoundBodyStart)
        bytes.append(contentsOf: keyBytes)
        bytes.appendLiteral(notFoundBodyEnd)
        return bytes
    }

    /// A GET of a value over `streamedValueThreshold`: the same answer, byte for byte, sent a
    /// chunk at a time from a reference to the stored bytes. (A second lookup: the key may have
    /// been written since `withEntry`; then this answers with what it finds now, as a GET a
    /// moment later would. `storedEntry` returns the stored value with its mod revision from one
    /// state: the ETag is that of these bytes.)
    private func streamGet(_ key: Key, keyBytes: [UInt8], _ responder: Responder) throws {
        guard let entry = try database.storedEntry(for: key) else {
            return responder.send(.json(status: 404, errorBytes: Array("key not found: ".utf8) + keyBytes), route: .kv)
        }
        let value = entry.value
        var bodyStart: [UInt8] = Array(#"{"key":"#.utf8)
        keyBytes.withUnsafeBytes { JSONWriter.appendString($0, to: &bodyStart) }
        bodyStart.append(contentsOf: Array(#","value":""#.utf8))
        responder.sendStreamed(
            .json(status: 200, body: [], headers: [KeyValueHandlers.etag(entry.modRevision)]), bodyStart: bodyStart, value: value,
            route: .kv)
    }

    /// `"<revision>"`: the strong entity tag of a key last modified at `revision`.
    static func etag(_ revision: UInt64) -> (name: String, value: String) {
        ("ETag", "\"" + String(revision) + "\"")
    }

    /// The condition of a write's If-Match / If-None-Match; nil in `refused` after answering its 400.
    private func condition(_ request: HTTPRequest, _ responder: Responder, refused: inout Bool) -> WriteCondition? {
        do {
            return try ConditionalHeaders.condition(request.headers)
        } catch {
            responder.send(.json(status: 400, error: error.message), route: .kv)
            refused = true
            return nil
        }
    }

    private func put(_ key: Key, _ request: HTTPRequest, _ responder: Responder) {
        if let refusal = role.writeRefusal { return responder.send(KeyValueHandlers.refused(refusal), route: .kv) }
        var refused = false
        let condition = condition(request, responder, refused: &refused)
        if refused { return }
        let decoded: PutRequestBody
        do {
            decoded = try PutRequestBodyDecoder.decode(request.body)
        } catch {
            return responder.send(.json(status: 400, error: "invalid JSON body: \(error)"), route: .kv)
        }
        let value: [UInt8]
        // The usual spellings first: no trimming or case folding on the hot path.
        let encoding = decoded.encoding
        switch encoding.isEmpty || encoding == "base64" ? "base64" : encoding.trimmedASCIIWhitespace().lowercased() {
        case "", "base64":
            do {
                value = try Base64.decode(decoded.value.utf8)
            } catch {
                return responder.send(.json(status: 400, error: "invalid base64 value: \(error)"), route: .kv)
            }
        case "utf-8", "utf8", "plain", "text":
            // Go stores U+FFFD in place of invalid UTF-8 and unpaired surrogates, silently: the
            // stored bytes would differ from those sent. We refuse (docs/OPERATIONS.md, "Values").
            if let defect = decoded.valueDefect {
                return responder.send(
                    .json(status: 400, error: "invalid JSON body: a value with encoding \"\(encoding)\" must be valid Unicode text, but it has an \(defect): send bytes that are not UTF-8 as base64"),
                    route: .kv)
            }
            value = Array(decoded.value.utf8)
        case let other:
            return responder.send(
                .json(status: 400, error: "unknown encoding \"\(other)\": use base64 (the default) or utf-8"), route: .kv)
        }
        var batch = WriteBatch()
        if let condition { batch.require(key, condition) }
        batch.put(key, value)
        submit(batch, key: key, etag: true, responder)
    }

    private func delete(_ key: Key, _ request: HTTPRequest, _ responder: Responder) {
        if let refusal = role.writeRefusal { return responder.send(KeyValueHandlers.refused(refusal), route: .kv) }
        var refused = false
        let condition = condition(request, responder, refused: &refused)
        if refused { return }
        var batch = WriteBatch()
        if let condition { batch.require(key, condition) }
        batch.delete(key)
        submit(batch, key: key, etag: false, responder)
    }

    /// A write is checked against the limits at once (a 400 right away), then handed to the
    /// engine at the end of the loop's iteration with the other writes read in it
    /// (`HTTPConnectionFront`'s `IterationBatch`); it is answered once durable.
    private func submit(_ batch: WriteBatch, key: Key, etag: Bool, _ responder: Responder) {
        do {
            try database.validate(batch)
        } catch {
            return responder.send(KeyValueHandlers.failure(error), route: .kv)
        }
        responder.connection.submitAtIterationEnd(Database.Submission(batch) { result in
            switch result {
            case .success(let revision): responder.sendWritten(revision: revision, etag: etag, route: .kv)
            case .failure(.conditionFailed(let failures)): responder.send(PreconditionAnswer.singleKey(failures, key: key), route: .kv)
            case .failure(let error): responder.send(KeyValueHandlers.failure(error), route: .kv)
            }
        })
    }

    func checkpoint(_ responder: Responder) {
        if let refusal = role.writeRefusal { return responder.send(KeyValueHandlers.refused(refusal), route: .checkpoint) }
        database.checkpoint { result in
            switch result {
            case .success: responder.send(KeyValueHandlers.ok, route: .checkpoint)
            case .failure(let error): responder.send(KeyValueHandlers.failure(error), route: .checkpoint)
            }
        }
    }

    static let ok = HTTPResponse.json(status: 200, body: Array("{\"ok\":true}\n".utf8))

    /// `ok` for a write of one key that committed at `revision` (`Responder.sendWritten`).
    static func written(revision: UInt64, etag: Bool) -> HTTPResponse {
        var response = ok
        if etag { response.headers.append(KeyValueHandlers.etag(revision)) }
        response.headers.append(("X-Revision", String(revision)))
        return response
    }
    static let readOnly = refused(.backup)

    /// The answer to a write the role refuses: 403 on a backup or a fenced primary, 503 while no
    /// backup is in sync under -repl-sync=required.
    static func refused(_ refusal: WriteRefusal) -> HTTPResponse {
        .json(status: refusal.httpStatus, error: refusal.description)
    }

    /// The status for an engine error: the client's fault (limits) is 400, a failed condition
    /// 412 (the single-key routes answer theirs before this, naming the key), a backup 403, the
    /// errors of opening a directory (which a running server does not expect) 500, and everything
    /// else 503: an engine that cannot write (closed, an I/O failure now or earlier) and any error
    /// this switch does not name, such as a write that is durable here but that the backup did not
    /// confirm under -repl-sync=required (`.notReplicated` → 503, through `default`).
    static func failure(_ error: DatabaseError) -> HTTPResponse {
        switch error {
        case .emptyKey, .keyTooLarge, .valueTooLarge, .batchTooLarge, .invalidLimit: .json(status: 400, error: error.description)
        case .conditionFailed(let failures): PreconditionAnswer.transaction(failures)
        case .readOnly: readOnly
        case .directoryMissing, .directoryLocked, .corruptLog, .corruptCheckpoint, .inconsistentDirectory:
            .json(status: 500, error: error.description)
        // .closed, .writesDisabled, .io, .notReplicated → 503 (a `default`, so that a case the engine
        // adds is a 503 too, without a warning while every case is named).
        default: .json(status: 503, error: error.description)
        }
    }
}

extension String {
    /// The string without leading and trailing ASCII whitespace (Go's strings.TrimSpace, for ASCII).
    func trimmedASCIIWhitespace() -> String {
        // On the UTF-8 bytes: the trimmed characters are ASCII, so any cut is a character boundary.
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
        let bytes = utf8
        guard let first = bytes.first, let last = bytes.last, isSpace(first) || isSpace(last) else { return self }
        let trimmed = bytes.drop(while: isSpace)
        var end = trimmed.endIndex
        while end > trimmed.startIndex, isSpace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return String(decoding: bytes[trimmed.startIndex..<end], as: UTF8.self)
    }
}
