#if canImport(Glibc)
import Glibc
#endif
import Testing
import Platform
@testable import StorageEngine
import Platform
import StorageEngineTesting

/// Opening reads the checkpoint and each segment in bounded chunks, never a whole file at once
/// (Recovery.readChunkSize), and still loads every key.
@Suite("Recovery reads in bounded chunks")
struct ChunkedRecoveryTests {
    @Test func openReadsNoMoreThanOneChunkAtATimeFromAMultiMegabyteDirectory() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        let value = [UInt8](repeating: 7, count: 1000)
        for index in 0..<3000 { try await db.put(Key("checkpointed-\(index)"), value) }
        _ = try await db.checkpoint()
        for index in 0..<3000 { try await db.put(Key("logged-\(index)"), value) }
        db.close()
        let checkpointSize = try #require(store.contents(of: "checkpoint.1")).count
        let logSize = try #require(store.contents(of: "logfile.1")).count
        #expect(checkpointSize > 2 * Recovery.readChunkSize && logSize > 2 * Recovery.readChunkSize)

        let reopened = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        defer { reopened.close() }
        #expect(reopened.stats.keys == 6000)
        #expect(try reopened.get("checkpointed-2999") == value)
        #expect(try reopened.get("logged-2999") == value)
        #expect(store.statistics.largestRead <= Recovery.readChunkSize, "read \(store.statistics.largestRead) bytes at once")
    }

    /// A checkpoint file stays readable through its handle after it is deleted, whole: the
    /// store does not shrink a file that a handle reads (a snapshot streaming to a replica while
    /// a newer checkpoint supersedes it).
    @Test func anOpenCheckpointStaysReadableWholeAfterItIsRemoved() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let store = try FileStore(directory: directory, create: false)
            defer { store.close() }
            // Larger than two of FileStore's shrink steps (4 MiB), with a recognisable end.
            let content = [UInt8](repeating: 0xAB, count: 9 << 20) + Array("the end".utf8)
            try store.writeCheckpoint(4) { (write) throws(DatabaseError) in try write(content) }
            let file = try store.openCheckpoint(4)
            defer { file.close() }
            try store.removeCheckpoint(4)
            #expect(try store.checkpointGenerations().isEmpty)
            var read: [UInt8] = []
            while read.count < file.size {
                let piece = try file.read(from: read.count, maxBytes: 1 << 20)
                if piece.isEmpty { break }
                read += piece
            }
            #expect(read.count == content.count)
            let intact = read == content  // (a Bool: a diff of two 9 MiB arrays would take forever)
            #expect(intact)
        }
    }

    /// A checkpoint large enough to be verified on a second thread still loads, checked, when no
    /// thread can be made (a replica decodes its primary's snapshot this way, at a peer's timing):
    /// before the fix the failed pthread_create was a preconditionFailure, and the process died.
    @Test func aLargeCheckpointLoadsAndIsVerifiedWhenNoThreadCanBeMade() async throws {
        let store = FaultInjectingStore()
        let db = try Database.open(logStore: store, snapshotStore: store, options: .forTests)
        let value = [UInt8](repeating: 7, count: 1000)
        for index in 0..<5000 { try await db.put(Key("k-\(index)"), value) }
        let generation = try await db.checkpoint().generation
        db.close()
        let refuse: (@escaping @Sendable () -> Void) throws(ThreadStartError) -> Void = { _ throws(ThreadStartError) in
            throw ThreadStartError(code: EAGAIN)
        }
        let checkpoint = try store.openCheckpoint(generation)
        #expect(checkpoint.size >= Recovery.parallelVerifyThreshold)
        let (map, entries) = try Recovery.decodeCheckpoint(checkpoint, generation: generation, file: "checkpoint", startThread: refuse)
        checkpoint.close()
        #expect(entries == 5000 && map.count == 5000)

        // The checksum is still verified: one flipped byte inside an entry is refused.
        store.corrupt(file: "checkpoint.\(generation)", offset: 100_000)
        let damaged = try store.openCheckpoint(generation)
        defer { damaged.close() }
        #expect(throws: DatabaseError.self) {
            _ = try Recovery.decodeCheckpoint(damaged, generation: generation, file: "checkpoint", startThread: refuse)
        }
    }
}
