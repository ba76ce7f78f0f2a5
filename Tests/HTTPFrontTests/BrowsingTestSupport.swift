import Foundation
import HTTPFront
import Platform
import StorageEngine
import Testing

// Helpers of the browsing, conditional-write and transaction tests: JSON answers read with
// Foundation (an independent decoder: what a client would use), keys out of listing items,
// synchronous engine writes for seeding, and a read-only role.

/// The body of `response` as a JSON object (a test failure if it is not one).
func jsonObject(_ response: RawResponse) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed]) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(response)")
    }
    return object
}

/// The key of a listing item (or a 412's failure), by its key_encoding: the bytes exactly.
func itemKey(_ item: [String: Any]) throws -> [UInt8] {
    guard let text = item["key"] as? String else { throw TestFailure("item without a key: \(item)") }
    switch item["key_encoding"] as? String {
    case "utf8": return Array(text.utf8)
    case "base64":
        guard let data = Data(base64Encoded: text) else { throw TestFailure("key is not base64: \(item)") }
        return Array(data)
    default: throw TestFailure("item without a known key_encoding: \(item)")
    }
}

/// The value of a listing item (base64), or nil when it has none (keys_only).
func itemValue(_ item: [String: Any]) throws -> [UInt8]? {
    guard let text = item["value"] as? String else { return nil }
    guard item["encoding"] as? String == "base64", let data = Data(base64Encoded: text) else {
        throw TestFailure("value not in base64: \(item)")
    }
    return Array(data)
}

/// One page of GET /v1/kv?query, checked for the shape every 200 page has.
struct ListedPage {
    var items: [[String: Any]]
    var more: Bool
    var token: String?
    var revision: UInt64
    var bodyCount: Int

    init(_ response: RawResponse) throws {
        guard response.status == 200 else { throw TestFailure("listing answered \(response)") }
        let object = try jsonObject(response)
        guard let items = object["items"] as? [[String: Any]], let count = object["count"] as? Int,
              let more = object["more"] as? Bool, let revision = (object["revision"] as? NSNumber)?.uint64Value
        else { throw TestFailure("not a listing page: \(response)") }
        #expect(count == items.count)
        self.items = items
        self.more = more
        self.token = object["token"] as? String
        self.revision = revision
        self.bodyCount = response.body.count
        if more { #expect(token != nil, "a page with more=true has a token") } else { #expect(object["token"] is NSNull) }
    }

    func keys() throws -> [[UInt8]] { try items.map(itemKey) }
}

/// Follows tokens from the first page of `query` to the last; every page's keys, in order.
func listAll(_ connection: RawConnection, query: String, maxPages: Int = 100_000) throws -> (keys: [[UInt8]], pages: [ListedPage]) {
    var pages: [ListedPage] = []
    var token: String?
    repeat {
        let target = "/v1/kv?" + query + (token.map { "&token=" + $0 } ?? "")
        let page = try ListedPage(connection.exchange(RawRequest.get(target)))
        pages.append(page)
        token = page.token
        guard pages.count <= maxPages else { throw TestFailure("listing \(query) did not end within \(maxPages) pages") }
    } while pages.last!.more
    return (try pages.flatMap { try $0.keys() }, pages)
}

/// What the engine lists for `range` (all of it, following its cursor): the order HTTP must give.
func engineKeys(_ database: Database, _ range: KeyRange, reverse: Bool = false) throws -> [[UInt8]] {
    var keys: [[UInt8]] = []
    var after: Key?
    while true {
        let page = try database.list(range, ListOptions(limit: 1000, reverse: reverse, keysOnly: true, after: after))
        keys += page.entries.map(\.key.bytes)
        guard let cursor = page.cursor else { return keys }
        after = cursor
    }
}

/// Commits `batch` and waits for it (for seeding): the revision it committed at.
@discardableResult
func commit(_ database: Database, _ batch: WriteBatch) throws -> UInt64 {
    let outcome = Lock<Result<UInt64, DatabaseError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    try database.submit(batch) { result in
        outcome.withLock { $0 = result }
        done.signal()
    }
    guard done.wait(timeout: .now() + .seconds(30 * Sanitizer.slowdown)) == .success else { throw TestFailure("a seeding write never completed") }
    return try outcome.withLock { $0! }.get()
}

/// Puts every key of `keys` with the value `value(key)`, in batches.
func seed(_ database: Database, _ keys: [[UInt8]], value: ([UInt8]) -> [UInt8] = { $0 }) throws {
    for start in stride(from: 0, to: keys.count, by: 500) {
        var batch = WriteBatch()
        for key in keys[start..<min(keys.count, start + 500)] { batch.put(Key(key), value(key)) }
        try commit(database, batch)
    }
}

/// A backup's role: reads served, writes refused as a backup refuses them.
struct ReadOnlyBackup: ServerRole {
    var role: ReplicationRole { .backup }
    var writeRefusal: WriteRefusal? { .backup }
    var replicationStatus: ReplicationStatus? { ReplicationStatus(role: .backup, epoch: 1) }
    func promote() -> PromotionOutcome { .refused("a test backup") }
}

extension RawRequest {
    /// A POST /v1/txn of `body`.
    static func txn(_ body: String, headers: [String] = []) -> [UInt8] {
        make("POST", "/v1/txn", body: body, headers: headers)
    }
}
