import Dispatch
import Foundation
import Platform
import Testing
@testable import StorageEngine
@testable import StorageEngineTesting

/// Unit tests of the simulated disk itself: what survives a power loss, what injected faults do.
/// (PowerLossTests uses it to prove the engine's durability.)
@Suite("FaultInjectingStore: the simulated disk")
struct FaultInjectingStoreTests {
    // MARK: File data and power loss

    @Test func unsyncedAppendsVanishOnPowerLoss() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3])
        #expect(store.contents(of: "logfile.1") == [1, 2, 3])
        store.powerLoss()
        store.powerOn()
        #expect(try store.readLog(1) == [])
    }

    @Test func syncedAppendsSurvivePowerLoss() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3])
        try writer.sync()
        try append(writer, [4, 5])
        store.powerLoss()
        store.powerOn()
        #expect(try store.readLog(1) == [1, 2, 3])
    }

    @Test func tornWriteKeepsTheChosenPrefixOfTheUnsyncedBytes() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3])
        try writer.sync()
        try append(writer, [4, 5, 6, 7, 8])
        var asked: [(String, Int)] = []
        let report = store.powerLoss { file, unsynced in
            asked.append((file, unsynced))
            return FaultInjectingStore.TornWrite(keep: 2)
        }
        store.powerOn()
        #expect(asked.count == 1 && asked[0].0 == "logfile.1" && asked[0].1 == 5)
        #expect(try store.readLog(1) == [1, 2, 3, 4, 5])
        #expect(report.tornFiles == [.init(name: "logfile.1", syncedBytes: 3, unsyncedBytes: 5, keptBytes: 2, garbageOffset: nil)])
        // What survived is durable now.
        store.powerLoss()
        store.powerOn()
        #expect(try store.readLog(1) == [1, 2, 3, 4, 5])
    }

    @Test func keepUnsyncedCountIsClampedToTheUnsyncedBytes() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [9, 9])
        store.powerLoss(keepUnsynced: { _, _ in 1000 })
        store.powerOn()
        #expect(try store.readLog(1) == [9, 9])
    }

    @Test func tornWriteCanTurnAKeptByteIntoGarbage() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2])
        try writer.sync()
        try append(writer, [3, 4, 5])
        let report = store.powerLoss { _, _ in FaultInjectingStore.TornWrite(keep: 3, garbage: 1) }
        store.powerOn()
        #expect(try store.readLog(1) == [1, 2, 3, ~4, 5])
        #expect(report.tornFiles.first?.garbageOffset == 3)
    }

    @Test func seededPowerLossIsReproducible() throws {
        func crashed(seed: UInt64) throws -> [[UInt8]] {
            let store = FaultInjectingStore()
            for generation in 1...6 as ClosedRange<UInt64> {
                let writer = try store.createLog(generation)
                try append(writer, Array(repeating: UInt8(generation), count: 10))
                try writer.sync()
                try append(writer, (0..<50).map { UInt8($0) })
            }
            store.powerLoss(seed: seed, garble: true)
            store.powerOn()
            return try (1...6 as ClosedRange<UInt64>).map { try store.readLog($0) }
        }
        for seed: UInt64 in 0..<20 {
            let first = try crashed(seed: seed)
            #expect(try crashed(seed: seed) == first, "seed \(seed)")
            for content in first { #expect(content.count >= 10 && content.count <= 60, "seed \(seed)") }
        }
        #expect(try crashed(seed: 1) != crashed(seed: 2) || crashed(seed: 3) != crashed(seed: 4))
    }

    @Test func unsyncedTruncationRevertsOnPowerLoss() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3, 4])
        try writer.sync()
        store.inject(.logTruncate, effect: .failAfterApplying)
        #expect(ioErrno { try store.truncateLog(1, to: 1) } == EIO)
        #expect(store.contents(of: "logfile.1") == [1])
        store.powerLoss()
        store.powerOn()
        #expect(try store.readLog(1) == [1, 2, 3, 4])
    }

    @Test func truncateLogIsDurable() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3, 4])
        try writer.sync()
        try store.truncateLog(1, to: 2)
        store.powerLoss()
        store.powerOn()
        #expect(try store.readLog(1) == [1, 2])
    }

    // MARK: Directory entries

    @Test func createdLogSurvivesPowerLossBecauseCreationSyncsTheDirectory() throws {
        let store = FaultInjectingStore()
        _ = try store.createLog(4)
        #expect(store.durableFileNames() == ["logfile.4"])
        store.powerLoss()
        store.powerOn()
        #expect(try store.logGenerations() == [4])
        #expect(try store.readLog(4) == [])
    }

    @Test func removedLogStaysRemovedAfterPowerLoss() throws {
        let store = FaultInjectingStore()
        _ = try store.createLog(1)
        _ = try store.createLog(2)
        try store.removeLog(1)
        try store.removeLog(9)  // missing: not an error
        store.powerLoss()
        store.powerOn()
        #expect(try store.logGenerations() == [2])
    }

    @Test func directoryChangeWhoseSyncFailedIsVisibleButNotDurable() throws {
        let store = FaultInjectingStore()
        _ = try store.createLog(1)
        store.inject(.directory, effect: .failAfterApplying)
        #expect(ioErrno { try store.removeLog(1) } == EIO)
        #expect(try store.logGenerations() == [])
        let report = store.powerLoss()
        store.powerOn()
        #expect(report.revivedEntries == ["logfile.1"])
        #expect(try store.logGenerations() == [1])
    }

    @Test func renameWhoseDirectorySyncFailedIsUndoneByPowerLoss() throws {
        let store = FaultInjectingStore()
        try store.writeVersion(3)
        try store.writeNewVersion(4)
        store.inject(.directory, effect: .failAfterApplying)
        #expect(ioErrno { try store.promoteNewVersion() } == EIO)
        #expect(try store.readVersion() == 4)
        #expect(try store.readNewVersion() == nil)
        let report = store.powerLoss()
        store.powerOn()
        #expect(report.lostEntries == ["version"] && report.revivedEntries == ["newVersion", "version"])
        #expect(try store.readVersion() == 3)
        #expect(try store.readNewVersion() == 4)
    }

    @Test func checkpointTemporaryWithoutDirectorySyncVanishesOnPowerLoss() throws {
        let store = FaultInjectingStore()
        var seen: [String] = []
        let error = ioErrno {
            try store.writeCheckpoint(1) { (write) throws(DatabaseError) in
                try write([1, 2, 3])
                seen = store.fileNames()
                store.powerLoss()
                try write([4])
            }
        }
        store.powerOn()
        #expect(error == EIO)
        #expect(seen == ["checkpoint.1.tmp"])
        #expect(store.fileNames() == [])
    }

    @Test func anyDirectorySyncMakesAPendingTemporaryEntryDurable() throws {
        let store = FaultInjectingStore()
        _ = ioErrno {
            try store.writeCheckpoint(1) { (write) throws(DatabaseError) in
                try write([1, 2, 3])
                _ = try store.createLog(7)  // syncs the directory, temporary entry included
                store.powerLoss()
            }
        }
        store.powerOn()
        #expect(store.fileNames() == ["checkpoint.1.tmp", "logfile.7"])
        #expect(store.contents(of: "checkpoint.1.tmp") == [])  // its data was never synced
        try store.removeTemporaries()
        #expect(store.fileNames() == ["logfile.7"])
    }

    @Test func writeCheckpointIsDurableWhenItReturns() throws {
        let store = FaultInjectingStore()
        try store.writeCheckpoint(2) { (write) throws(DatabaseError) in
            try write([1, 2])
            try write([3])
        }
        store.powerLoss()
        store.powerOn()
        #expect(try store.checkpointGenerations() == [2])
        #expect(try store.readCheckpoint(2) == [1, 2, 3])
        #expect(store.fileNames() == ["checkpoint.2"])
    }

    @Test func failedCheckpointWriteRemovesTheTemporaryAndKeepsTheOldCheckpoint() throws {
        let store = FaultInjectingStore()
        try store.writeCheckpoint(2) { (write) throws(DatabaseError) in try write([1]) }
        store.inject(.checkpointWrite, skip: 1)
        let error = ioErrno {
            try store.writeCheckpoint(2) { (write) throws(DatabaseError) in
                try write([7])
                try write([8])
            }
        }
        #expect(error == EIO)
        #expect(store.fileNames() == ["checkpoint.2"])
        #expect(try store.readCheckpoint(2) == [1])
    }

    @Test func markersAreWrittenReadAndPromoted() throws {
        let store = FaultInjectingStore()
        #expect(try store.readVersion() == nil)
        try store.writeVersion(5)
        try store.writeNewVersion(6)
        #expect(try store.readVersion() == 5 && store.readNewVersion() == 6)
        #expect(store.contents(of: "newVersion") == Array("6\n".utf8))
        try store.promoteNewVersion()
        store.powerLoss()
        store.powerOn()
        #expect(try store.readVersion() == 6 && store.readNewVersion() == nil)
        #expect(store.fileNames() == ["version"])
    }

    @Test func unreadableMarkersAreReportedAsFileStoreReportsThem() throws {
        let store = FaultInjectingStore(files: ["version": Array("x\n".utf8), "newVersion": [0xFF]])
        #expect(throws: DatabaseError.self) { try store.readVersion() }
        #expect(try store.readNewVersion() == nil)
    }

    @Test func initialFilesAreDurable() throws {
        let store = FaultInjectingStore(files: ["logfile.3": [1, 2], "version": Array("3\n".utf8)])
        store.powerLoss()
        store.powerOn()
        #expect(try store.logGenerations() == [3])
        #expect(try store.readVersion() == 3)
        #expect(try store.readLog(3) == [1, 2])
    }

    // MARK: Injected faults

    @Test(arguments: FaultInjectingStore.Operation.allCases)
    func injectedFaultThrowsEIO(_ operation: FaultInjectingStore.Operation) throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2, 3])
        try writer.sync()
        try store.writeVersion(1)
        store.inject(operation)
        let call: () throws -> Void
        switch operation {
        case .logAppend: call = { try append(writer, [4]) }
        case .logSync: call = { try writer.sync() }
        case .logTruncate: call = { try store.truncateLog(1, to: 1) }
        case .checkpointWrite: call = { try store.writeCheckpoint(1) { (write) throws(DatabaseError) in try write([1]) } }
        case .markerWrite: call = { try store.writeNewVersion(2) }
        case .directory: call = { _ = try store.createLog(2) }
        case .read: call = { _ = try store.readLog(1) }
        }
        #expect(ioErrno(call) == EIO)
        #expect(store.statistics.injectedFaults == 1)
        #expect(store.pendingFaultCount == 0)
        // Only that call failed: the same call succeeds now.
        #expect(ioErrno(call) == nil)
        // A clean failure changed nothing.
        #expect(try store.readLog(1) == (operation == .logTruncate ? [1] : [1, 2, 3] + (operation == .logAppend ? [4] : [])))
        #expect(store.fileNames().filter { $0.hasSuffix(".tmp") } == [])
    }

    @Test func failedAppendCanLeaveAPartialUnsyncedWrite() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        store.inject(.logAppend, effect: .partialWrite(bytes: 3))
        #expect(ioErrno { try append(writer, [1, 2, 3, 4, 5]) } == EIO)
        #expect(store.contents(of: "logfile.1") == [1, 2, 3])
        #expect(writer.size == 3)
        #expect(store.unsyncedByteCount(of: "logfile.1") == 3)
    }

    @Test func skipLetsTheFirstOperationsSucceed() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        store.inject(.logSync, skip: 2)
        try writer.sync()
        try writer.sync()
        #expect(ioErrno { try writer.sync() } == EIO)
        try writer.sync()
        #expect(store.statistics.logSyncs == 3)
        #expect(store.operationCount(.logSync) == 4)
    }

    @Test func timesRepeatsAFault() throws {
        let store = FaultInjectingStore()
        store.inject(.read, times: .max)
        try store.writeVersion(1)
        for _ in 0..<5 { #expect(ioErrno { _ = try store.readVersion() } == EIO) }
        store.clearFaults()
        #expect(try store.readVersion() == 1)
    }

    @Test func powerLossFaultCutsThePowerAsTheOperationStarts() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1])
        try writer.sync()
        try append(writer, [2])
        store.inject(.directory, effect: .powerLoss)
        #expect(ioErrno { _ = try store.createLog(2) } == EIO)
        #expect(!store.isPoweredOn)
        store.powerOn()
        #expect(try store.logGenerations() == [1])
        #expect(try store.readLog(1) == [1])
    }

    @Test func tornPowerLossFaultTearsAsTheSeededPowerLossDoes() throws {
        func store(crashingAtSync: Bool) throws -> FaultInjectingStore {
            let store = FaultInjectingStore()
            for generation: UInt64 in 1...4 {
                let writer = try store.createLog(generation)
                try append(writer, Array(repeating: UInt8(generation), count: 40))
            }
            if crashingAtSync {
                store.inject(.logSync, effect: .tornPowerLoss(seed: 99, garble: true))
                #expect(ioErrno { try store.openLogForAppend(1).sync() } == EIO)
            } else {
                store.powerLoss(seed: 99, garble: true)
            }
            store.powerOn()
            return store
        }
        let atSync = try store(crashingAtSync: true)
        let direct = try store(crashingAtSync: false)
        #expect(atSync.lastPowerLoss == direct.lastPowerLoss)
        for generation: UInt64 in 1...4 {
            #expect(try atSync.readLog(generation) == direct.readLog(generation))
        }
    }

    @Test func powerLossWithThePowerAlreadyOffChangesNothing() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        try append(writer, [1, 2])
        let first = store.powerLoss(keepUnsynced: { _, count in count })
        let second = store.powerLoss()
        store.powerOn()
        #expect(first.tornFiles.count == 1 && second == FaultInjectingStore.PowerLossReport())
        #expect(store.lastPowerLoss == first)
        #expect(store.statistics.powerLosses == 1)
        #expect(try store.readLog(1) == [1, 2])
    }

    @Test func storeRefusesEveryCallWhileThePowerIsOff() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)
        store.powerLoss()
        #expect(ioErrno { _ = try store.logGenerations() } == EIO)
        #expect(ioErrno { _ = try store.createLog(2) } == EIO)
        #expect(ioErrno { _ = try store.readVersion() } == EIO)
        #expect(ioErrno { try store.removeTemporaries() } == EIO)
        #expect(ioErrno { try append(writer, [1]) } == EIO)
        #expect(store.operationCount(.directory) == 1)  // refused calls are not operations
    }

    @Test func writersFromBeforeThePowerLossStayDeadAfterPowerOn() throws {
        let store = FaultInjectingStore()
        let old = try store.createLog(1)
        store.powerLoss()
        store.powerOn()
        #expect(ioErrno { try append(old, [1]) } == EIO)
        #expect(ioErrno { try old.sync() } == EIO)
        old.close()
        let new = try store.openLogForAppend(1)
        try append(new, [7])
        try new.sync()
        #expect(try store.readLog(1) == [7])
        new.close()
        #expect(ioErrno { try append(new, [8]) } == EBADF)
    }

    // MARK: Inspection

    @Test func corruptFlipsADurableByte() throws {
        let store = FaultInjectingStore()
        try store.writeCheckpoint(1) { (write) throws(DatabaseError) in try write([0x10, 0x20]) }
        store.corrupt(file: "checkpoint.1", offset: 1)
        #expect(try store.readCheckpoint(1) == [0x10, 0xDF])
        store.powerLoss()
        store.powerOn()
        #expect(try store.readCheckpoint(1) == [0x10, 0xDF])
    }

    @Test func statisticsCountSyncsAndPowerLosses() throws {
        let store = FaultInjectingStore()
        let writer = try store.createLog(1)  // one directory sync
        try append(writer, [1])
        try writer.sync()
        try writer.sync()
        try store.writeVersion(1)  // one file sync, one directory sync
        store.powerLoss()
        let statistics = store.statistics
        #expect(statistics.appends == 1 && statistics.appendedBytes == 1)
        #expect(statistics.logSyncs == 2)
        #expect(statistics.fileSyncs == 1)
        #expect(statistics.directorySyncs == 2)
        #expect(statistics.powerLosses == 1)
    }

    // MARK: Threads and the engine

    @Test func concurrentWritersOnSeparateSegmentsKeepEveryByte() throws {
        let store = FaultInjectingStore()
        let writers = 4
        let rounds = 300
        let failures = Lock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: writers) { index in
            do throws(DatabaseError) {
                let writer = try store.createLog(UInt64(index))
                for round in 0..<rounds {
                    try append(writer, [UInt8(index), UInt8(truncatingIfNeeded: round)])
                    if round % 3 == 0 { try writer.sync() }
                    _ = try store.logGenerations()
                }
                try writer.sync()
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        store.powerLoss()
        store.powerOn()
        for index in 0..<writers {
            let expected = (0..<rounds).flatMap { [UInt8(index), UInt8(truncatingIfNeeded: $0)] }
            #expect(try store.readLog(UInt64(index)) == expected)
        }
    }

    @Test func databaseReopensOverTheStoreAfterPowerLoss() async throws {
        let store = FaultInjectingStore()
        var options = DatabaseOptions.forTests
        options.checkpoints.enabled = false
        let db = try Database.open(logStore: store, snapshotStore: store, options: options)
        try await db.put("a", [1])
        _ = try await db.checkpoint()
        try await db.put("b", [2])
        store.powerLoss()
        db.close()
        store.powerOn()
        let reopened = try Database.open(logStore: store, snapshotStore: store, options: options)
        #expect(try reopened.get("a") == [1])
        #expect(try reopened.get("b") == [2])
        #expect(reopened.recovery.checkpointGeneration == 1)
        reopened.close()
    }
}

// MARK: - Helpers

/// Appends `bytes` through `writer`.
private func append(_ writer: any LogSegmentWriter, _ bytes: [UInt8]) throws(DatabaseError) {
    try bytes.withBytes { (raw) throws(DatabaseError) in try writer.append(raw) }
}

/// Runs `body`: nil if it succeeds, the errno if it throws `.io`, -1 for any other error.
private func ioErrno(_ body: () throws -> Void) -> Int32? {
    do {
        try body()
        return nil
    } catch DatabaseError.io(_, _, let code) {
        return code
    } catch {
        return -1
    }
}
