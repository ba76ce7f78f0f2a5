import Foundation
import Testing
@testable import StorageEngine
@testable import small_db_stress
#if canImport(Glibc)
import Glibc
import StorageEngineTesting
#endif

/// Real processes, real files, SIGKILL: the crash a power cut cannot be simulated for. A child
/// process (small_db_stress) runs concurrent writers and prints every acknowledged write; we kill
/// it at a random moment, reopen its directory here and check that every acknowledged write is
/// there, exactly, and that each writer's keys show the state after its last acknowledged
/// operation or after the one in flight: nothing else (batches are all or nothing).
@Suite(.spawnsChildProcesses)
struct KillNineTests {
    static let writers = 6
    static let workload = StressWorkload(keysPerWriter: 8, batchEvery: 4)

    @Test(arguments: [0, 200])
    func everyAcknowledgedWriteSurvivesSIGKILL(checkpointUpdates: Int) async throws {
        var random = SystemRandomNumberGenerator()
        try await TestSupport.withTemporaryDirectory { directory in
            var earlierWriters: [Int: [Key: [UInt8]]] = [:]
            for round in 0..<3 {
                let firstWriter = round * KillNineTests.writers
                let acknowledged = try runAndKill(
                    directory: directory, firstWriter: firstWriter, checkpointUpdates: checkpointUpdates,
                    killAfter: Int.random(in: 200...2_000, using: &random))
                let db = try Database.open(directory: directory, options: .forTests)
                defer { db.close() }
                for writer in firstWriter..<(firstWriter + KillNineTests.writers) {
                    let done = (acknowledged[writer] ?? -1) + 1
                    let atLeast = KillNineTests.workload.state(writer: writer, afterOperations: done)
                    let atMost = KillNineTests.workload.state(writer: writer, afterOperations: done + 1)
                    let recovered = try recoveredState(db, writer: writer)
                    #expect(
                        recovered == atLeast || recovered == atMost,
                        "round \(round), writer \(writer): \(done) operations acknowledged; recovered \(recovered.count) keys that match neither the state after them nor after the one in flight")
                }
                for (earlier, state) in earlierWriters {
                    #expect(try recoveredState(db, writer: earlier) == state, "round \(round): writer \(earlier) of an earlier round changed")
                }
                for writer in firstWriter..<(firstWriter + KillNineTests.writers) {
                    earlierWriters[writer] = try recoveredState(db, writer: writer)
                }
            }
        }
    }

    /// Runs small_db_stress on `directory` until it has acknowledged `killAfter` operations, kills
    /// it with SIGKILL, and returns each writer's last acknowledged operation number (every line it
    /// printed before it died, including those still in the pipe).
    private func runAndKill(directory: String, firstWriter: Int, checkpointUpdates: Int, killAfter: Int) throws -> [Int: Int] {
        let process = Process()
        process.executableURL = try stressExecutable()
        process.arguments = [
            "-dir", directory, "-writers", String(KillNineTests.writers), "-first-writer", String(firstWriter),
            "-keys", String(KillNineTests.workload.keysPerWriter), "-batch-every", String(KillNineTests.workload.batchEvery),
            "-checkpoint-updates", String(checkpointUpdates),
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var text = ""
        var lines = 0
        let reader = output.fileHandleForReading
        while lines < killAfter {
            let data = reader.availableData
            guard !data.isEmpty else { break }  // the child exited on its own: an error it printed
            let piece = String(decoding: data, as: UTF8.self)
            lines += piece.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            text += piece
        }
        #expect(process.isRunning, "small_db_stress stopped before it was killed")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        text += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .uncaughtSignal)

        var last: [Int: Int] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "ack", let writer = Int(fields[1]), let sequence = Int(fields[2]) else {
                continue  // a line cut by the kill: not an acknowledgement we know of
            }
            last[writer] = max(last[writer] ?? -1, sequence)
        }
        #expect(last.values.reduce(0) { $0 + $1 + 1 } >= killAfter)
        return last
    }

    private func recoveredState(_ db: Database, writer: Int) throws -> [Key: [UInt8]] {
        var state: [Key: [UInt8]] = [:]
        for index in 0..<KillNineTests.workload.keysPerWriter {
            let key = KillNineTests.workload.key(writer: writer, index: index)
            if let value = try db.get(key) { state[key] = value }
        }
        return state
    }

    /// small_db_stress, built by SwiftPM next to this test bundle (this target depends on it).
    private func stressExecutable() throws -> URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var directory = testBinary.deletingLastPathComponent()
        // The test binary may sit inside a bundle directory (…/X.xctest/…); step up to the products directory.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("small_db_stress").path) {
            let parent = directory.deletingLastPathComponent()
            guard parent.path != directory.path else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "small_db_stress near \(testBinary.path)"])
            }
            directory = parent
        }
        return directory.appendingPathComponent("small_db_stress")
    }
}
