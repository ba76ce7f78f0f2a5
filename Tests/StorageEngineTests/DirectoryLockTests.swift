import Foundation
import Testing
@testable import StorageEngine
import StorageEngineTesting

private typealias TS = TestSupport

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

private let flockPath = "/usr/bin/flock"

/// A child process holding an exclusive flock on `path` until its stdin is closed:
/// `flock PATH -c 'echo locked; read line'`.
private final class LockHoldingChild {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init(locking path: String) throws {
        process.executableURL = URL(fileURLWithPath: flockPath)
        process.arguments = [path, "-c", "echo locked; read line"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// Blocks until the child says it holds the lock (or exits without saying so). Returns
    /// whether it did.
    func waitUntilLocked() -> Bool {
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("locked") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return false }  // end of file: the child is gone
            seen.append(chunk)
        }
        return true
    }

    /// Closes the child's stdin (its `read` returns at end of file, the shell exits, the lock
    /// goes) and waits for it to end. Returns whether it exited by itself (not by a signal).
    func release() throws -> Bool {
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationReason == .exit
    }
}

/// Runs `flock -n PATH -c true`: exit status 0 if another process could take the lock now.
private func otherProcessCanLock(_ path: String) throws -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: flockPath)
    process.arguments = ["-n", path, "-c", "true"]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus == 0
}

@Suite("One open database per data directory", .opensDataDirectories)
struct DirectoryLockTests {
    @Test func secondOpenInTheSameProcessFailsWithDirectoryLocked() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            defer { db.close() }
            #expect(throws: DatabaseError.directoryLocked(path: directory)) {
                try Database.open(directory: directory, options: .forTests)
            }
        }
    }

    /// A child process spawned while the database is open holds a copy of the LOCK descriptor
    /// until it executes its program; closing must release the lock all the same (tests that
    /// spawn servers in parallel with reopening ones saw `.directoryLocked`).
    @Test func closeReleasesTheLockEvenWhileACopyOfItsDescriptorIsOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            // The copy a spawned child would hold: a duplicate of the descriptor open on LOCK.
            let lockPath = directory + "/LOCK"
            let copy = try #require(Self.openDescriptors().first { Self.target(of: $0) == lockPath }.map { dup($0) })
            defer { Glibc.close(copy) }
            #expect(copy >= 0)
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            reopened.close()
        }
    }

    private static func openDescriptors() throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int32($0) }
    }

    private static func target(of descriptor: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
    }

    @Test func refusedSecondOpenLeavesTheFirstDatabaseWorking() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            defer { db.close() }
            try await db.put("before", v("1"))
            let before = try TS.snapshot(directory)
            #expect(throws: DatabaseError.directoryLocked(path: directory)) {
                try Database.open(directory: directory, create: true, options: .forTests)
            }
            #expect(try TS.snapshot(directory) == before)
            try await db.put("after", v("2"))
            #expect(try db.get("before") == v("1"))
            #expect(try db.get("after") == v("2"))
        }
    }

    @Test func openSucceedsAfterTheHolderCloses() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("k", v("1"))
            db.close()
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("k") == v("1"))
        }
    }

    @Test func failedRecoveryReleasesTheLock() async throws {
        try await TS.withTemporaryDirectory { directory in
            // A version file that names no number: recovery fails after the lock was taken.
            try TS.writeFile(directory + "/version", v("garbage\n"))
            try TS.writeFile(directory + "/logfile.0", [])
            #expect(throws: DatabaseError.self) { try Database.open(directory: directory, options: .forTests) }
            try TS.writeMarker(directory, "version", 0)
            let db = try Database.open(directory: directory, options: .forTests)
            db.close()
        }
    }

    @Test func leftoverLOCKFileFromACrashedProcessDoesNotBlockOpening() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            try await db.put("k", v("1"))
            db.close()
            // The file stays after close (or a crash); only a live flock on it counts.
            #expect(TS.fileExists(directory + "/LOCK"))
            try TS.writeFile(directory + "/LOCK", v("12345\n"))
            let reopened = try Database.open(directory: directory, options: .forTests)
            defer { reopened.close() }
            #expect(try reopened.get("k") == v("1"))
        }
    }

    @Test func lockIsHeldOnTheLOCKFileInTheDirectory() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            #expect(TS.fileExists(directory + "/LOCK"))
            db.close()
        }
    }
}

/// The lock against another process: these tests spawn `flock` (util-linux). They run one at a time,
/// and while none of the tests that open data directories runs (see `ChildProcessIsolation`).
@Suite(
    // The time limit guards against a hung child; it covers the wait for `.spawnsChildProcesses`
    // too, which under a sanitizer lasts as long as the slowest data-directory test (minutes).
    "One open database per data directory, across processes", .serialized, .spawnsChildProcesses,
    .timeLimit(.minutes(Sanitizer.slowdown)),
    .enabled(if: FileManager.default.isExecutableFile(atPath: flockPath), "needs util-linux flock at /usr/bin/flock")
)
struct DirectoryLockAcrossProcessesTests {
    @Test func openFailsWhileAnotherProcessHoldsTheLockAndSucceedsAfter() async throws {
        try await TS.withTemporaryDirectory { directory in
            let child = try LockHoldingChild(locking: directory + "/LOCK")
            let locked = child.waitUntilLocked()
            #expect(locked, "the child never took the lock")
            if locked {
                #expect(throws: DatabaseError.directoryLocked(path: directory)) {
                    try Database.open(directory: directory, options: .forTests)
                }
            }
            #expect(try child.release(), "the lock-holding child did not exit by itself")

            let db = try Database.open(directory: directory, options: .forTests)
            defer { db.close() }
            try await db.put("k", v("1"))
            #expect(try db.get("k") == v("1"))
        }
    }

    @Test func anotherProcessCannotLockWhileTheDatabaseIsOpen() async throws {
        try await TS.withTemporaryDirectory { directory in
            let db = try Database.open(directory: directory, create: true, options: .forTests)
            #expect(try otherProcessCanLock(directory + "/LOCK") == false)
            db.close()
            #expect(try otherProcessCanLock(directory + "/LOCK") == true)
        }
    }
}
