// small_db_example: a tour of the storage engine, like the Go small-db's example.
//
// Writes, reads, deletes and checkpoints, listing the data directory's files after each step;
// then closes, reopens, and shows what recovery brought back.
//
//   swift run small_db_example [-dir DIR] [-keep] [-background]
import Foundation
import GoFlags
import StorageEngine

let flags = FlagSet(programName: "small_db_example")
flags.string("dir", usage: "data directory (default: a new temporary directory)")
flags.bool("keep", usage: "keep the temporary data directory afterwards")
flags.bool("background", usage: "let a background checkpoint run (every 200 updates) instead of a manual one")
flags.parseOrExit()

let isTemporary = flags.string("dir").isEmpty
let directory = isTemporary
    ? FileManager.default.temporaryDirectory.appendingPathComponent("small_db_example-\(UUID().uuidString)").path
    : flags.string("dir")

func show(_ step: String) {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    let described = files.map { name -> String in
        let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as? Int) ?? 0
        return "\(name) (\(size) B)"
    }
    print("  files after \(step): \(described.joined(separator: ", "))")
}

func text(_ value: [UInt8]?) -> String {
    guard let value else { return "(missing)" }
    return String(validating: value, as: UTF8.self).map { "\"\($0)\"" } ?? "\(value.count) bytes"
}

/// Adds one to the decimal counter at `key` by compare-and-set: read it with its revision, write
/// on the condition that it is still at that revision, and read again if another writer won.
func increment(_ key: Key, in db: Database) async throws(DatabaseError) -> (count: Int, revision: UInt64) {
    while true {
        let current = try db.entry(key)
        let count = current.flatMap { $0.value.flatMap { Int(String(decoding: $0, as: UTF8.self)) } } ?? 0
        var update = WriteBatch()
        update.require(key, current.map { .modRevision($0.modRevision) } ?? .absent)
        update.put(key, Array("\(count + 1)".utf8))
        do {
            return (count + 1, try await db.write(update))
        } catch {
            guard case .conditionFailed = error else { throw error }  // someone else wrote first
        }
    }
}

var options = DatabaseOptions()
options.checkpoints.enabled = flags.bool("background")
options.checkpoints.updates = 200
options.log = { level, line in print("  [\(level.rawValue)] \(line)") }

do {
    print("opening \(directory)")
    let db = try Database.open(directory: directory, create: true, options: options)
    show("open")

    print("writing 3 keys")
    try await db.put("alpha", Array("first".utf8))
    try await db.put("beta", Array("second".utf8))
    try await db.put(Key([0x00, 0xFF, 0x2F]), [1, 2, 3])  // keys are bytes, not necessarily text
    show("writes")

    print("reading: alpha = \(text(try db.get("alpha"))), beta = \(text(try db.get("beta")))")

    print("deleting beta, and an atomic batch: gamma = third, alpha = first (again)")
    try await db.delete("beta")
    var batch = WriteBatch()
    batch.put("gamma", Array("third".utf8))
    batch.put("alpha", Array("first (again)".utf8))
    try await db.write(batch)
    show("delete and batch")

    print("browsing every key in order, two per page (revision: each write adds one)")
    var listing = ListOptions(limit: 2)
    while true {
        let page = try db.list(.all, listing)
        for entry in page.entries {
            print("  \(entry.key) = \(text(entry.value)) (created at \(entry.createRevision), modified at \(entry.modRevision))")
        }
        guard let cursor = page.cursor else { break }
        listing.after = cursor
    }

    print("compare-and-set: incrementing visits, retrying if another writer got there first")
    for _ in 0..<3 {
        let (count, revision) = try await increment("visits", in: db)
        print("  visits = \(count) at revision \(revision)")
    }

    if flags.bool("background") {
        print("writing 250 more keys so that the background checkpoint (every 200 updates) runs")
        for index in 0..<250 { try await db.put(Key("bulk-\(index)"), Array("value \(index)".utf8)) }
        let deadline = ContinuousClock.now + .seconds(10)
        while db.stats.checkpoints == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))  // waiting for a background event, for display only
        }
        print("background checkpoints so far: \(db.stats.checkpoints)")
    } else {
        let result = try await db.checkpoint()
        print("checkpoint: generation \(result.generation), \(result.keys) keys, \(result.duration)")
    }
    show("checkpoint")

    try await db.put("delta", Array("after the checkpoint".utf8))
    let stats = db.stats
    print("stats: \(stats.keys) keys, \(stats.bytes) bytes, WAL \(stats.walBytes) bytes, generation \(stats.generation), \(stats.syncs) syncs")
    db.close()
    show("close")

    print("reopening")
    let reopened = try Database.open(directory: directory, options: options)
    print("recovery: \(reopened.recovery.summary)")
    for key: Key in ["alpha", "beta", "gamma", "delta"] {
        print("  \(key) = \(text(try reopened.get(key)))")
    }
    print("  0x00ff2f = \(try reopened.get(Key([0x00, 0xFF, 0x2F])) ?? [])")
    reopened.close()
} catch {
    FileHandle.standardError.write(Data("small_db_example: \(error)\n".utf8))
    exit(1)
}

if isTemporary && !flags.bool("keep") {
    try? FileManager.default.removeItem(atPath: directory)
} else {
    print("data kept in \(directory)")
}
