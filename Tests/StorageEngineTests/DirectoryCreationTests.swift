import Foundation
import Testing
@testable import StorageEngine

private typealias TS = TestSupport

/// `-create` makes the data directory durable in its parent before anything is acknowledged in it
/// (FileStore.makeDirectories).
@Suite("Creating a data directory", .opensDataDirectories)
struct DirectoryCreationTests {
    @Test func eachNewDirectoryAndTheParentOfTheTopmostAreSyncedDeepestFirst() async throws {
        try await TS.withTemporaryDirectory { root in
            let target = root + "/b/c/d"
            var synced: [String] = []
            try FileStore.makeDirectories(target) { synced.append($0) }
            #expect(synced == [root + "/b/c/d", root + "/b/c", root + "/b", root])
            #expect(FileManager.default.fileExists(atPath: target))
        }
    }

    @Test func anExistingDirectoryIsNotSyncedAgain() async throws {
        try await TS.withTemporaryDirectory { root in
            var synced: [String] = []
            try FileStore.makeDirectories(root) { synced.append($0) }
            #expect(synced.isEmpty)
        }
    }

    @Test func openingWithCreateMakesTheWholePathAndWorks() async throws {
        try await TS.withTemporaryDirectory { root in
            let db = try Database.open(directory: root + "/x/y", create: true, options: .forTests)
            defer { db.close() }
            try await db.put("k", Array("v".utf8))
            #expect(TS.fileExists(root + "/x/y/logfile.0"))
        }
    }
}
