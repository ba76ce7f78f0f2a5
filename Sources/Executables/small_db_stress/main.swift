// small_db_stress: concurrent writers that never stop, each printing every write the database has
// acknowledged. The crash tests run it, kill it with SIGKILL at a random moment, reopen the
// directory and check that every acknowledged write survived; it is also a quick way to load a
// data directory by hand.
//
//   small_db_stress -dir DIR [-writers 8] [-first-writer 0] [-keys 16] [-batch-every 5] [-checkpoint-updates 0] [-ops 0]
//
// Writer w's operation n (n = 0, 1, 2, …) is `StressWorkload.operation(writer: w, sequence: n)`:
// usually a put of key "w<w>-<n mod keys>", every batch-every-th a batch that sets all of the
// writer's keys at once. After each acknowledgement the writer prints "ack <w> <n>" (one write(2)
// per line, so lines from different writers never interleave).
import Foundation
import GoFlags
import StorageEngine
#if canImport(Glibc)
import Glibc
#endif

let flags = FlagSet(programName: "small_db_stress")
flags.string("dir", usage: "data directory (created if missing)")
flags.int("writers", default: 8, usage: "concurrent writers")
flags.int("first-writer", usage: "number of the first writer (runs on one directory use distinct writers)")
flags.int("keys", default: 16, usage: "keys per writer")
flags.int("batch-every", default: 5, usage: "every this many operations is an atomic batch (0: none)")
flags.int("checkpoint-updates", usage: "background checkpoint after this many updates (0: the default triggers)")
flags.int("ops", usage: "operations per writer, then exit (0: run until killed)")
flags.parseOrExit()
if flags.string("dir").isEmpty {
    FileHandle.standardError.write(Data("flag -dir is required\n\(flags.usage)\n".utf8))
    exit(2)
}

let workload = StressWorkload(keysPerWriter: flags.int("keys"), batchEvery: flags.int("batch-every"))
var options = DatabaseOptions()
options.checkpoints.updates = flags.int("checkpoint-updates")
let db: Database
do {
    db = try Database.open(directory: flags.string("dir"), create: true, options: options)
} catch {
    FileHandle.standardError.write(Data("small_db_stress: \(error)\n".utf8))
    exit(1)
}

let operations = flags.int("ops")
await withTaskGroup(of: Void.self) { group in
    let first = flags.int("first-writer")
    for writer in first..<(first + flags.int("writers")) {
        group.addTask {
            var sequence = 0
            while operations == 0 || sequence < operations {
                do {
                    try await db.write(workload.operation(writer: writer, sequence: sequence))
                } catch {
                    FileHandle.standardError.write(Data("small_db_stress: writer \(writer): \(error)\n".utf8))
                    exit(1)
                }
                let line = Array("ack \(writer) \(sequence)\n".utf8)
                _ = line.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                sequence += 1
            }
        }
    }
}
db.close()
