import Foundation
import StorageEngine

/// Open time and resident memory: a checkpoint of `keys` keys (11-byte keys, 100-byte values)
/// plus a WAL of `keys` put records (overwrites), opened by a fresh child process so that nothing
/// of the setup counts.
enum OpenBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("open")
        var options = DatabaseOptions()
        options.checkpoints.enabled = false
        let db = try Database.open(directory: directory, create: true, options: options)
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

        var samples: [OpenChild.Measurement] = []
        for _ in 0..<3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: context.executable)
            process.arguments = ["-child-open", directory]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            samples.append(try JSONDecoder().decode(OpenChild.Measurement.self, from: data))
        }
        if ProcessInfo.processInfo.environment["KEEP"] == nil { try? FileManager.default.removeItem(atPath: directory) }
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

enum OpenChild {
    struct Measurement: Codable {
        let openSeconds: Double
        let residentBytes: Int
        let keys: Int
    }

    static func run(directory: String) -> Int32 {
        var options = DatabaseOptions()
        options.checkpoints.enabled = false
        let clock = ContinuousClock()
        let start = clock.now
        guard let db = try? Database.open(directory: directory, options: options) else { return 1 }
        let elapsed = clock.now - start
        let measurement = Measurement(openSeconds: elapsed.seconds, residentBytes: residentBytes(), keys: db.stats.keys)
        db.close()
        print(String(decoding: (try? JSONEncoder().encode(measurement)) ?? Data(), as: UTF8.self))
        return 0
    }
}
