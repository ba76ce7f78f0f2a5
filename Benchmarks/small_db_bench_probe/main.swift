// small_db_bench_probe DIR: opens the data directory DIR, prints one JSON line with the open time,
// the resident memory afterwards, the peak resident memory (VmHWM) and the key count, and exits.
// small_db_bench runs it in a fresh process for its open case, so that nothing of the benchmark's
// own setup counts. It links the storage engine and nothing else (no Foundation), as a program embedding the engine would.
import Platform
import StorageEngine
#if canImport(Glibc)
import Glibc
#endif

/// Writes `text` to standard error (one write(2); the C `stderr` global is not concurrency-safe).
func printError(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

guard CommandLine.arguments.count == 2 else {
    printError("usage: small_db_bench_probe DIR\n")
    exit(2)
}
var options = DatabaseOptions()
options.checkpoints.enabled = false
let clock = ContinuousClock()
let start = clock.now
let db: Database
do {
    db = try Database.open(directory: CommandLine.arguments[1], options: options)
} catch {
    printError("small_db_bench_probe: \(error)\n")
    exit(1)
}
let openSeconds = (clock.now - start).secondsValue
print(
    "{\"openSeconds\":\(openSeconds),\"residentBytes\":\(residentMemoryBytes()),"
        + "\"peakResidentBytes\":\(peakResidentMemoryBytes()),\"keys\":\(db.stats.keys)}")
db.close()
