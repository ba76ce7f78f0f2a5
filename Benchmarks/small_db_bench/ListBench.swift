import Foundation
import Platform
import StorageEngine

/// Browsing at scale: -keys keys (11-byte keys, 100-byte values) loaded, then
/// - a 100-key page from a random position, 20,000 times: p50, p99 and the worst page;
/// - every key in pages of 1,000 (cursor to cursor): the whole listing's time;
/// - counting every key, and the keys of a random 1% range.
/// One thread, no writers: the engine's own cost of a page (the HTTP route adds its encoding).
enum ListBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("list")
        let db = try openBenchDatabase(directory)
        let keyCount = context.keys
        try await preload(db, count: keyCount)
        let clock = ContinuousClock()
        var latencies: [Double] = []
        var generator = SystemRandomNumberGenerator()
        var returned = 0
        for _ in 0..<20_000 {
            let start = benchKey(Int.random(in: 0..<keyCount, using: &generator))
            let began = clock.now
            let page = try db.list(KeyRange(start: start), ListOptions(limit: 100))
            latencies.append((clock.now - began).secondsValue * 1e6)
            returned += page.entries.count
        }
        latencies.sort()
        func percentile(_ fraction: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * fraction))] }

        let walkStarted = clock.now
        var walked = 0
        var options = ListOptions(limit: 1000)
        while true {
            let page = try db.list(.all, options)
            walked += page.entries.count
            guard let cursor = page.cursor else { break }
            options.after = cursor
        }
        let walk = (clock.now - walkStarted).secondsValue
        precondition(walked == keyCount, "walked \(walked) of \(keyCount) keys")

        let countStarted = clock.now
        let all = try db.count(.all).count
        let countAll = (clock.now - countStarted).secondsValue * 1e6
        let low = Int.random(in: 0..<(keyCount - keyCount / 100), using: &generator)
        let rangeStarted = clock.now
        let some = try db.count(KeyRange(start: benchKey(low), end: benchKey(low + keyCount / 100))).count
        let countRange = (clock.now - rangeStarted).secondsValue * 1e6
        precondition(all == keyCount && some == keyCount / 100, "counted \(all) and \(some)")
        db.close()
        try? FileManager.default.removeItem(atPath: directory)
        return [
            BenchResult(name: "100-key page, p50", value: percentile(0.5), unit: "µs", note: "\(keyCount) keys, random start"),
            BenchResult(name: "100-key page, p99", value: percentile(0.99), unit: "µs"),
            BenchResult(name: "100-key page, worst", value: latencies.last!, unit: "µs", note: "\(returned / 20_000) keys per page on average"),
            BenchResult(name: "all keys in pages of 1,000", value: walk * 1000, unit: "ms", note: "\(walked) keys"),
            BenchResult(name: "count all keys", value: countAll, unit: "µs"),
            BenchResult(name: "count a 1% range", value: countRange, unit: "µs"),
        ]
    }
}
