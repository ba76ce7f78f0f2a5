import Foundation
import Testing
@testable import StorageEngine
import StorageEngineTesting

private typealias TS = TestSupport

/// Opening makes the data directory durable in its parent (and so on up) before anything is
/// acknowledged in it (FileStore.makeDirectories, FileStore.syncDirectoryAndAncestors).
@Suite("Creating a data directory", .opensDataDirectories)
struct DirectoryCreationTests {
    @Test func eachDirectoryOfThePathIsSyncedDeepestFirstUpToTheFileSystemRoot() async throws {
        try await TS.withTemporaryDirectory { root in
            let target = root + "/b/c/d"
            try FileStore.makeDirectories(target)
            #expect(FileManager.default.fileExists(atPath: target))
            var synced: [String] = []
            try FileStore.syncDirectoryAndAncestors(target) { synced.append($0) }
            let resolved = try #require(realpath(root, nil).map { path in defer { free(path) }; return String(cString: path) })
            #expect(Array(synced.prefix(4)) == [resolved + "/b/c/d", resolved + "/b/c", resolved + "/b", resolved])
            // On up to the root of the file system that holds it: the same device all the way.
            var first = stat()
            var last = stat()
            #expect(stat(synced[0], &first) == 0 && stat(synced[synced.count - 1], &last) == 0)
            #expect(first.st_dev == last.st_dev)
        }
    }

    /// A directory that exists may not be durable (an open that crashed before syncing it made
    /// it): it is synced too (the regression test with a power loss is in PowerLossOnFilesTests).
    @Test func anExistingDirectoryIsSyncedToo() async throws {
        try await TS.withTemporaryDirectory { root in
            var synced: [String] = []
            try FileStore.syncDirectoryAndAncestors(root) { synced.append($0) }
            #expect(synced.count >= 1)
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
