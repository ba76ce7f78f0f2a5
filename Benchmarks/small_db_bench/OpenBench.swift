import Foundation
#if canImport(Glibc)
import Glibc
#endif
import StorageEngine

/// Open time and resident memory: a checkpoint of `keys` keys (11-byte keys, 100-byte values)
/// plus a WAL of `keys` put records (overwrites), opened by small_db_bench_probe in a fresh
/// process (the engine alone, no Foundation) so that nothing of the setup counts. Reports the
/// open time, VmRSS after the open, VmHWM (the peak during it) and their ratio.
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

        let beside = URL(fileURLWithPath: context.executable).deletingLastPathComponent().appendingPathComponent("small_db_bench_probe").path
        let probes = context.probes.isEmpty ? [beside] : context.probes
        // Five rounds, each running every probe once, so that builds are compared in the same minutes.
        var samples = [[Measurement]](repeating: [], count: probes.count)
        for _ in 0..<5 {
            for (index, probe) in probes.enumerated() {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: probe)
                process.arguments = [directory]
                let output = Pipe()
                process.standardOutput = output
                try process.run()
                let data = output.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                samples[index].append(try JSONDecoder().decode(Measurement.self, from: data))
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
        var results: [BenchResult] = []
        for (index, probe) in probes.enumerated() {
            let label = probes.count == 1 ? "" : " [\(probe)]"
            let runs = samples[index]
            let openTime = median(runs.map(\.openSeconds))
            let rss = median(runs.map { Double($0.residentBytes) })
            let peak = median(runs.map { Double($0.peakResidentBytes ?? 0) })
            let ratio = median(runs.map { Double($0.peakResidentBytes ?? 0) / Double(max(1, $0.residentBytes)) })
            results += [
                BenchResult(
                    name: "open (\(context.keys)-key checkpoint + \(context.keys)-record WAL)\(label)", value: openTime, unit: "s",
                    note: "median of 5 fresh processes; WAL \(walBytes / 1_000_000) MB"),
                BenchResult(name: "resident memory after open\(label)", value: rss / 1_000_000, unit: "MB", note: "VmRSS, \(runs[0].keys) keys"),
                BenchResult(name: "peak resident memory during open\(label)", value: peak / 1_000_000, unit: "MB", note: "VmHWM"),
                BenchResult(name: "peak / after open\(label)", value: ratio, unit: "x", note: "median of the 5 per-process ratios"),
            ]
        }
        return results
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}

/// What small_db_bench_probe prints.
struct Measurement: Codable {
    let openSeconds: Double
    let residentBytes: Int
    /// VmHWM (nil from a probe built before it printed one).
    let peakResidentBytes: Int?
    let keys: Int
}
