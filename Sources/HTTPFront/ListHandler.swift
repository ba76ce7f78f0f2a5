import StorageEngine
import WireProtocol

/// `GET /v1/kv?…`: a page of keys in order, or their count (the query: `ListQuery`).
///
///     {"items":[{"key":…,"key_encoding":…,"value":"<base64>","encoding":"base64",
///                "create_revision":N,"mod_revision":N},…],
///      "count":<items in this page>,"more":true|false,"token":"…"|null,"revision":R}
///     {"count":<keys in the range>,"revision":R}                    with count_only=true
///
/// The page is read from one consistent state (revision R: an atomic batch is in it whole or not
/// at all) and answered on the loop's thread, like a GET. It is encoded straight from the map's
/// stored bytes (`Database.listStored`: a retained reference per value, no copy) into the body.
///
/// A page's body is bounded: once it holds at least one item, an item that would take it past
/// `maxPageBodyBytes` ends the page early with more=true and a token to continue from. Without
/// that a page of 1000 values of 16 MiB would be a 22 GB answer. One item alone may exceed the
/// bound (a 16 MiB value is a 22 MB item): a page always makes progress.
struct ListHandler: Sendable {
    let database: Database
    let maxKeySize: Int

    /// The size a page stops at: the 4 MiB of answers a connection may hold before it stops
    /// reading requests (`HTTPConnection`'s back-pressure), so one page is about one such budget.
    static let maxPageBodyBytes = 4 << 20

    /// What the items may take: the bound less room for the page's end (count, more, a token
    /// of the longest key, revision), so that a whole page of several items fits the bound.
    let itemBudget: Int

    init(database: Database) {
        self.database = database
        self.maxKeySize = database.options.limits.maxKeySize
        self.itemBudget = ListHandler.maxPageBodyBytes - 160 - Base64.encodedCount(of: maxKeySize + 2)
    }

    func handle(_ request: HTTPRequest, _ responder: Responder) {
        let query: ListQuery
        do {
            query = try ListQuery(request.query, maxKeySize: maxKeySize)
        } catch {
            return responder.send(.json(status: 400, error: error.message), route: .kvList)
        }
        do {
            let body = query.countOnly ? try count(query) : try page(query)
            responder.send(.json(status: 200, body: body), route: .kvList)
        } catch {
            responder.send(KeyValueHandlers.failure(error), route: .kvList)
        }
    }

    private func count(_ query: ListQuery) throws(DatabaseError) -> [UInt8] {
        let (count, revision) = try database.count(query.range)
        var body: [UInt8] = Array(#"{"count":"#.utf8)
        DecimalText.append(count, to: &body)
        body.append(contentsOf: ListHandler.revisionName)
        DecimalText.append(revision, to: &body)
        body.append(contentsOf: ListHandler.end)
        return body
    }

    private func page(_ query: ListQuery) throws(DatabaseError) -> [UInt8] {
        let page = try database.listStored(
            query.range, ListOptions(limit: query.limit, reverse: query.reverse, keysOnly: query.keysOnly, after: query.after))
        // One allocation in the usual case: the keys and the values' base64, plus each item's
        // fixed text and numbers (96 bytes is more than they take).
        var capacity = 128
        for entry in page.entries {
            capacity += 96 + entry.key.count + (query.keysOnly ? 0 : Base64.encodedCount(of: entry.value.count) + 24)
            if capacity >= ListHandler.maxPageBodyBytes { break }
        }
        var body: [UInt8] = []
        body.reserveCapacity(min(capacity, ListHandler.maxPageBodyBytes + 1024))
        body.append(contentsOf: ListHandler.itemsStart)

        var count = 0
        var stoppedEarly = false
        for entry in page.entries {
            let itemStart = body.count
            if count > 0 {
                // Checked before encoding with what is known exactly (the value's base64), and
                // after it with the key's escaped length too.
                let valueBytes = query.keysOnly ? 0 : Base64.encodedCount(of: entry.value.count)
                if itemStart + 96 + entry.key.count + valueBytes > itemBudget {
                    stoppedEarly = true
                    break
                }
                body.append(UInt8(ascii: ","))
            }
            body.append(UInt8(ascii: "{"))
            entry.key.withUnsafeBytes { KeyJSON.appendMembers($0, to: &body) }
            if !query.keysOnly {
                body.append(contentsOf: ListHandler.valueName)
                entry.value.withUnsafeBytes { Base64.encode($0, to: &body) }
                body.append(contentsOf: ListHandler.encodingBase64)
            }
            body.append(contentsOf: ListHandler.createRevisionName)
            DecimalText.append(entry.createRevision, to: &body)
            body.append(contentsOf: ListHandler.modRevisionName)
            DecimalText.append(entry.modRevision, to: &body)
            body.append(UInt8(ascii: "}"))
            if count > 0, body.count > itemBudget {
                body.removeSubrange(itemStart...)
                stoppedEarly = true
                break
            }
            count += 1
        }

        let more = stoppedEarly || page.more
        body.append(contentsOf: ListHandler.countName)
        DecimalText.append(count, to: &body)
        body.append(contentsOf: more ? ListHandler.moreTrue : ListHandler.moreFalse)
        if more, count > 0 {
            body.append(UInt8(ascii: "\""))
            body.append(contentsOf: ListToken.encode(after: page.entries[count - 1].key, reverse: query.reverse))
            body.append(UInt8(ascii: "\""))
        } else {
            body.append(contentsOf: ListHandler.null)
        }
        body.append(contentsOf: ListHandler.revisionName)
        DecimalText.append(page.revision, to: &body)
        body.append(contentsOf: ListHandler.end)
        return body
    }

    private static let itemsStart = Array(#"{"items":["#.utf8)
    private static let valueName = Array(#","value":""#.utf8)
    private static let encodingBase64 = Array(#"","encoding":"base64""#.utf8)
    private static let createRevisionName = Array(#","create_revision":"#.utf8)
    private static let modRevisionName = Array(#","mod_revision":"#.utf8)
    private static let countName = Array(#"],"count":"#.utf8)
    private static let moreTrue = Array(#","more":true,"token":"#.utf8)
    private static let moreFalse = Array(#","more":false,"token":"#.utf8)
    private static let null = Array("null".utf8)
    private static let revisionName = Array(#","revision":"#.utf8)
    private static let end = Array("}\n".utf8)
}
