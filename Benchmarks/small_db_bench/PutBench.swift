import Foundation
import Synchronization
import StorageEngine

/// Durable puts: W concurrent writers, each awaiting its own put before the next, 100-byte values.
/// Every put is acknowledged only after fdatasync, so this measures group commit.
enum PutBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        var results: [BenchResult] = []
        for writers in [1, 16, 64, 256] {
            let directory = context.freshDirectory("puts-\(writers)")
            var options = DatabaseOptions()
            options.checkpoints.enabled = false
            let db = try Database.open(directory: directory, create: true, options: options)
            let rate = try await measure(db, writers: writers, duration: context.duration)
            let stats = db.stats
            db.close()
            try? FileManager.default.removeItem(atPath: directory)
            results.append(BenchResult(
                name: "durable puts, \(writers) writer\(writers == 1 ? "" : "s")", value: rate, unit: "puts/s",
                note: String(format: "%.1f puts per sync", Double(stats.puts) / Double(max(1, stats.syncs)))))
        }
        return results
    }

    static func measure(_ db: Database, writers: Int, duration: Duration) async throws -> Double {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        let start = clock.now
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var count = 0
                    let value = benchValue(writer)
                    while clock.now < deadline {
                        try await db.put(benchKey(writer * 1_000_000 + count % 1_000_000), value)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / (clock.now - start).seconds
    }
}
