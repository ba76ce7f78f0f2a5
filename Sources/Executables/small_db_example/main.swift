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
