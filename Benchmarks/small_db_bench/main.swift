// small_db_bench: measures the storage engine through its public API.
//
//   swift run -c release small_db_bench [-json] [-case NAME[,NAME…]] [-dir DIR] [-duration 3s] [-keys N]
//
// Cases: disk (the disk's own synced-append rate, the bound for one writer), lone-writer (one
// writer's durable puts against that rate, interleaved, as a ratio), puts (durable puts
// with 1, 16, 64, 256 concurrent writers, 100-byte values), gets (1 and 2 threads),
// checkpoint (write latency while a checkpoint of -keys keys runs), open (open time, resident
// memory and peak resident memory for a -keys checkpoint plus a -keys-record WAL, measured in a
// fresh child process; -probes runs other builds' probes on the same directory, interleaved),
// list (pages from random positions, a whole listing in pages of 1,000, counts, over -keys keys).
// Never run in CI: the figures depend on the machine; docs/PERFORMANCE.md says how to read them.
import Foundation
import GoFlags
import StorageEngine

let flags = FlagSet(programName: "small_db_bench")
flags.bool("json", usage: "print JSON instead of a table")
flags.string("case", default: "disk,lone-writer,puts,gets,checkpoint,open", usage: "comma-separated cases to run")
flags.string("dir", usage: "where to put benchmark data (default: the system temporary directory)")
flags.duration("duration", default: .seconds(3), usage: "how long each throughput measurement runs")
flags.int("keys", default: 1_000_000, usage: "keys for the checkpoint and open cases")
flags.string("writers", default: "1,16,64,256", usage: "comma-separated writer counts for the puts case")
flags.string("probes", usage: "open case: comma-separated small_db_bench_probe executables to run on the same directory, interleaved (default: the one beside this program)")
flags.parseOrExit()

let baseDirectory = flags.string("dir").isEmpty ? FileManager.default.temporaryDirectory.path : flags.string("dir")
let runDirectory = baseDirectory + "/small_db_bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: runDirectory) }

let context = BenchContext(
    directory: runDirectory, duration: flags.duration("duration"), keys: flags.int("keys"),
    writerCounts: flags.string("writers").split(separator: ",").compactMap { Int($0) },
    executable: CommandLine.arguments[0],
    probes: flags.string("probes").split(separator: ",").map(String.init))
var results: [BenchResult] = []
for name in flags.string("case").split(separator: ",").map(String.init) {
    FileHandle.standardError.write(Data("running \(name)…\n".utf8))
    switch name {
    case "disk": results += try DiskBench.run(context)
    case "puts": results += try await PutBench.run(context)
    case "lone-writer": results += try await LoneWriterBench.run(context)
    case "gets": results += try await GetBench.run(context)
    case "checkpoint": results += try await CheckpointLatencyBench.run(context)
    case "open": results += try await OpenBench.run(context)
    case "list": results += try await ListBench.run(context)
    default:
        FileHandle.standardError.write(Data("unknown case \(name)\n".utf8))
        exit(2)
    }
}
print(flags.bool("json") ? Report.json(results) : Report.table(results))
