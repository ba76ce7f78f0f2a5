import Foundation
#if canImport(Glibc)
import Glibc
#endif
import StorageEngine

/// Open time and resident memory: a checkpoint of `keys` keys (11-byte keys, 100-byte values)
/// plus a WAL of `keys` put records (overwrites), opened by small_db_bench_probe in a fresh
/// process (the engine alone, no Foundation) so that nothing of the setup counts.
enum OpenBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("open")
        let db = try openBenchDatabase(directory)
        try await preload(db, count: context.keys)
        _ = try await db.checkpoint()
        // The WAL: `keys` single-put records (one record each), written by many writers at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            let writers = 256
            for writer in 0..<writers {
                group.addTask {
                    var index = writer
                    while index < context.keys {
                        try await db.put(benchKey((index &* 7) % context.keys), benchValue(index + 1))
                        index += writers
                    }
                }
            }
            try await group.waitForAll()
        }
        let walBytes = db.stats.walBytes
        db.close()
        sync()  // measure a restart with a warm page cache, not one racing the setup's write-back

        var samples: [Measurement] = []
        let probe = URL(fileURLWithPath: context.executable).deletingLastPathComponent().appendingPathComponent("small_db_bench_probe")
        for _ in 0..<3 {
            let process = Process()
            process.executableURL = probe
            process.arguments = [directory]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            samples.append(try JSONDecoder().decode(Measurement.self, from: data))
        }
        try? FileManager.default.removeItem(atPath: directory)
        let openTimes = samples.map(\.openSeconds).sorted()
        let rss = samples.map(\.residentBytes).sorted()
        return [
            BenchResult(
                name: "open (\(context.keys)-key checkpoint + \(context.keys)-record WAL)", value: openTimes[1], unit: "s",
                note: "median of 3 fresh processes; WAL \(walBytes / 1_000_000) MB"),
            BenchResult(name: "resident memory after open", value: Double(rss[1]) / 1_000_000, unit: "MB", note: "VmRSS, \(samples[0].keys) keys"),
        ]
    }
}

/// What small_db_bench_probe prints.
struct Measurement: Codable {
    let openSeconds: Double
    let residentBytes: Int
    let keys: Int
}
