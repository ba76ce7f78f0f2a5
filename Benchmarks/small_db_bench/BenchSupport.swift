import Foundation
import Platform
import StorageEngine

struct BenchContext: Sendable {
    let directory: String
    let duration: Duration
    let keys: Int
    let writerCounts: [Int]
    let executable: String
    /// The probes the open case runs, interleaved (empty: the small_db_bench_probe beside this
    /// executable). Another build's probe compares that build's open with this one's.
    let probes: [String]

    /// A fresh, empty directory for one case.
    func freshDirectory(_ name: String) -> String {
        let path = directory + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        return path
    }
}

/// One measured figure.
struct BenchResult: Sendable, Codable {
    let name: String
    let value: Double
    let unit: String
    var note: String = ""
}

enum Report {
    static func table(_ results: [BenchResult]) -> String {
        let width = max(30, results.map(\.name.count).max() ?? 0)
        var lines = [pad("case", width) + "  " + pad("value", 14) + "  unit       note"]
        lines.append(String(repeating: "-", count: width + 40))
        for result in results {
            let value = result.value >= 100 ? String(format: "%.0f", result.value) : String(format: "%.3f", result.value)
            lines.append(pad(result.name, width) + "  " + pad(value, 14, left: true) + "  " + pad(result.unit, 9) + "  " + result.note)
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ results: [BenchResult]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(results)) ?? Data(), as: UTF8.self)
    }

    private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? padding + text : text + padding
    }
}

/// An 11-byte key for index `i`, as the anchors' 1M-key figures use ("key:" + 7 digits).
func benchKey(_ index: Int) -> Key {
    var digits = String(index)
    digits = String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    return Key("key:" + digits)
}

/// A 100-byte value that differs per index.
func benchValue(_ index: Int) -> [UInt8] {
    var value = [UInt8](repeating: 0x61, count: 100)
    var remaining = index
    for position in 0..<8 {
        value[position] = UInt8(0x30 + remaining % 10)
        remaining /= 10
    }
    return value
}

/// A new database in `directory` with background checkpoints off, so that no case measures one
/// it did not ask for.
func openBenchDatabase(_ directory: String) throws -> Database {
    var options = DatabaseOptions()
    options.checkpoints.enabled = false
    return try Database.open(directory: directory, create: true, options: options)
}

/// Loads `count` keys quickly with large batches (the load is setup, not the measurement).
func preload(_ db: Database, count: Int) async throws {
    var index = 0
    while index < count {
        var batch = WriteBatch()
        let end = min(count, index + 5_000)
        for key in index..<end { batch.put(benchKey(key), benchValue(key)) }
        try await db.write(batch)
        index = end
    }
}

func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
    guard !sorted.isEmpty else { return .zero }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
}

