import Foundation
import Platform
import Testing
@testable import StorageEngine
import WireProtocol

/// The sanitizer this test process runs under, if any (the same as HTTPFrontTests' `Sanitizer`,
/// until the test-support product of issue 12 holds one for both): how many times longer a
/// deadline that only guards against a hang must be. Windows in which something must not happen
/// are never scaled.
enum Sanitizer {
    static let slowdown: Int = {
        if dlsym(nil, "__tsan_init") != nil { return 10 }
        if dlsym(nil, "__asan_init") != nil { return 3 }
        return 1
    }()
}

/// Helpers shared by the StorageEngine tests that run over the real `FileStore`: temporary data
/// directories, the Go-written fixtures, hand-made directory states and byte-level file surgery.
///
/// Everything lives in this namespace so the helpers never clash with other test files.
enum TestSupport {
    // MARK: Temporary directories

    /// Runs `body` with the path of a fresh, empty, private directory, and deletes the directory
    /// and everything in it when `body` returns or throws. Each test gets its own, so tests run in
    /// parallel. The directory exists; a test that needs a missing one uses a path inside it.
    static func withTemporaryDirectory<R>(
        _ body: (String) async throws -> R
    ) async throws -> R {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("small-db-engine-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }

    // MARK: Go fixtures

    /// Tests/StorageEngineTests/Fixtures/go-small-db (excluded from the target: read in place).
    static let fixturesDirectory: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/go-small-db").path

    /// Copies every file of fixture folder `name` into `directory` (which must exist), as new
    /// writable files: the fixtures themselves are read-only and must never be opened.
    static func copyFixture(_ name: String, to directory: String) throws {
        let source = fixturesDirectory + "/" + name
        for file in try FileManager.default.contentsOfDirectory(atPath: source) {
            try writeFile(directory + "/" + file, readFile(source + "/" + file))
        }
    }

    /// The file names of fixture folder `name`.
    static func fixtureFiles(_ name: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: fixturesDirectory + "/" + name))
    }

    /// Loads `<name>.expected.json`: a map base64(key) -> base64(value).
    static func expectedContents(_ name: String) throws -> [[UInt8]: [UInt8]] {
        struct Expected: Decodable {
            let keys: [String: String]
            enum CodingKeys: String, CodingKey { case keys = "keys_base64_to_value_base64" }
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/" + name + ".expected.json"))
        let expected = try JSONDecoder().decode(Expected.self, from: data)
        var contents: [[UInt8]: [UInt8]] = [:]
        for (key, value) in expected.keys {
            let keyBytes = try #require(Data(base64Encoded: key), "key \(key) is not base64")
            let valueBytes = try #require(Data(base64Encoded: value), "value of \(key) is not base64")
            contents[Array(keyBytes)] = Array(valueBytes)
        }
        return contents
    }

    // MARK: Comparing a database with expected contents

    /// Checks that `db` holds exactly `expected`: every key with its exact value, and no other key
    /// (the key count and the byte count match, so nothing more can be there).
    static func expectContents(
        of db: Database, equal expected: [[UInt8]: [UInt8]], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        var mismatches: [String] = []
        for (key, value) in expected {
            let actual = try db.get(Key(key))
            if actual != value {
                mismatches.append("\(Key(key)): expected \(value.count) bytes, got \(actual.map { "\($0.count) bytes" } ?? "nil")")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) keys differ: \(mismatches.prefix(5))", sourceLocation: sourceLocation)
        #expect(db.stats.keys == expected.count, "key count", sourceLocation: sourceLocation)
        let bytes = expected.reduce(0) { $0 + $1.key.count + $1.value.count }
        #expect(db.stats.bytes == bytes, "byte count", sourceLocation: sourceLocation)
    }

    /// The whole content of `db`, read back through a checkpoint it writes now: the only way to
    /// enumerate a database. Returns the map and the checkpoint's header.
    static func dumpThroughCheckpoint(
        _ db: Database, directory: String
    ) async throws -> (contents: [[UInt8]: [UInt8]], header: CheckpointHeader) {
        let result = try await db.checkpoint()
        let bytes = try readFile(directory + "/checkpoint.\(result.generation)")
        let (header, entries) = try CheckpointReader.readAll(bytes, expectedGeneration: result.generation)
        var contents: [[UInt8]: [UInt8]] = [:]
        for entry in entries {
            #expect(contents[entry.key] == nil, "key \(Key(entry.key)) appears twice in the checkpoint")
            contents[entry.key] = entry.value
        }
        return (contents, header)
    }

    // MARK: Files

    static func readFile(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func appendToFile(_ path: String, _ bytes: [UInt8]) throws {
        try writeFile(path, readFile(path) + bytes)
    }

    static func fileSize(_ path: String) throws -> Int {
        try readFile(path).count
    }

    static func fileExists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    /// Inverts every bit of the byte at `offset`.
    static func flipByte(_ path: String, at offset: Int) throws {
        var bytes = try readFile(path)
        bytes[offset] ^= 0xFF
        try writeFile(path, bytes)
    }

    /// The file names in `directory`, without `LOCK` (which every open creates and keeps).
    static func listing(_ directory: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: directory)).subtracting(["LOCK"])
    }

    /// Every file in `directory` but `LOCK`, with its bytes: to check that a failed open changed nothing.
    static func snapshot(_ directory: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try listing(directory) { files[name] = try readFile(directory + "/" + name) }
        return files
    }

    // MARK: Hand-made directory states

    /// Writes logfile.`generation` holding one framed record per element of `records`.
    /// Returns the offset where each record starts, and the end.
    @discardableResult
    static func writeLog(
        _ directory: String, generation: UInt64, records: [[WALMutation]]
    ) throws -> (starts: [Int], end: Int) {
        var buffer: [UInt8] = []
        var starts: [Int] = []
        for record in records {
            starts.append(buffer.count)
            WALEncoder.append(record, to: &buffer)
        }
        try writeFile(directory + "/logfile.\(generation)", buffer)
        return (starts, buffer.count)
    }

    /// Writes checkpoint.`generation` in format version 2 (this project's before revisions: any
    /// key order, no revisions) holding `entries`.
    static func writeCheckpoint(_ directory: String, generation: UInt64, entries: [([UInt8], [UInt8])]) throws {
        var writer = CheckpointWriter(generation: generation, entryCount: UInt64(entries.count), layout: .unrevised)
        for (key, value) in entries {
            key.withUnsafeBytes { key in value.withUnsafeBytes { value in writer.append(key: key, value: value) } }
        }
        try writeFile(directory + "/checkpoint.\(generation)", writer.finish())
    }

    /// Writes a marker file (`version`, `newVersion`, `newVersion.tmp`…) holding "N\n", as Go does.
    static func writeMarker(_ directory: String, _ name: String, _ generation: UInt64) throws {
        try writeFile(directory + "/" + name, Array("\(generation)\n".utf8))
    }

    /// The content of a marker file as text ("N\n"), or nil if it is missing.
    static func marker(_ directory: String, _ name: String) throws -> String? {
        let path = directory + "/" + name
        guard fileExists(path) else { return nil }
        return String(decoding: try readFile(path), as: UTF8.self)
    }

    /// A set record entry from strings, for readable hand-made logs.
    static func set(_ key: String, _ value: String) -> WALMutation {
        .set(key: Array(key.utf8), value: Array(value.utf8))
    }

    /// A delete record entry from a string key.
    static func delete(_ key: String) -> WALMutation {
        .delete(key: Array(key.utf8))
    }

    // MARK: Waiting

    /// Polls `condition` until it holds or `timeout` passes; returns whether it held. The pause
    /// between polls only paces the loop: the outcome depends on the condition, not on timing.
    static func eventually(
        timeout: Duration = .seconds(10), _ condition: () throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

// MARK: Child processes and directory locks

/// Keeps tests that spawn child processes apart from tests that open data directories.
///
/// Why: the directory lock is an flock on LOCK, owned by the open file description. Between the
/// moment a child process is spawned (posix_spawn: a copy of the whole descriptor table) and the
/// moment it executes its program (which closes the O_CLOEXEC descriptors), the child holds a
/// reference to every LOCK this process has open. A test that closes a database and opens it again
/// inside that window sees `.directoryLocked` (seen in practice: Foundation's `Process` closes the
/// inherited descriptors one by one before exec, which takes about a millisecond).
///
/// `.opensDataDirectories` (on the suites that open databases) and `.spawnsChildProcesses` act as
/// a readers-writer lock around whole tests: a spawning test runs alone among them.
struct ChildProcessIsolation: SuiteTrait, TestTrait, TestScoping {
    let exclusive: Bool

    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> ChildProcessIsolation? {
        // Once per test function run (covering all its cases), never for a whole suite.
        test.isSuite || testCase != nil ? nil : self
    }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        await ChildProcessGate.shared.acquire(exclusive: exclusive)
        do {
            try await function()
        } catch {
            ChildProcessGate.shared.release(exclusive: exclusive)
            throw error
        }
        ChildProcessGate.shared.release(exclusive: exclusive)
    }
}

extension Trait where Self == ChildProcessIsolation {
    /// For suites whose tests open (and close and reopen) data directories.
    static var opensDataDirectories: Self { ChildProcessIsolation(exclusive: false) }
    /// For tests that spawn child processes: they run while no `.opensDataDirectories` test does.
    static var spawnsChildProcesses: Self { ChildProcessIsolation(exclusive: true) }
}

/// An async readers-writer lock; a waiting writer goes before readers that arrive after it.
final class ChildProcessGate: Sendable {
    static let shared = ChildProcessGate()

    private struct State {
        var readers = 0
        var writer = false
        var waitingReaders: [CheckedContinuation<Void, Never>] = []
        var waitingWriters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Lock(State())

    func acquire(exclusive: Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                if exclusive {
                    guard state.writer || state.readers > 0 else {
                        state.writer = true
                        return true
                    }
                    state.waitingWriters.append(continuation)
                } else {
                    guard state.writer || !state.waitingWriters.isEmpty else {
                        state.readers += 1
                        return true
                    }
                    state.waitingReaders.append(continuation)
                }
                return false
            }
            if granted { continuation.resume() }
        }
    }

    func release(exclusive: Bool) {
        let wake = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if exclusive { state.writer = false } else { state.readers -= 1 }
            guard !state.writer else { return [] }
            if !state.waitingWriters.isEmpty {
                guard state.readers == 0 else { return [] }
                state.writer = true
                return [state.waitingWriters.removeFirst()]
            }
            let readers = state.waitingReaders
            state.waitingReaders.removeAll()
            state.readers += readers.count
            return readers
        }
        for continuation in wake { continuation.resume() }
    }
}

/// Blocks on a completion-style engine call, as the replication layer's threads do (the calls
/// it is used for complete within milliseconds: no long block of the cooperative pool).
func wait<T: Sendable>(
    _ call: (@escaping @Sendable (Result<T, DatabaseError>) -> Void) -> Void
) -> Result<T, DatabaseError> {
    blockingCall(call)
}

