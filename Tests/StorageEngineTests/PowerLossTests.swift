import Dispatch
import Foundation
import Synchronization
import Testing
@testable import StorageEngine
import StorageEngineTesting

/// The durability proof: whatever the moment of a power loss or an I/O failure, every acknowledged
/// write is there after reopening, exactly; every acknowledged delete stays deleted; a write in
/// flight shows its old or its new state; a batch shows all of its changes or none.
///
/// The disk is `FaultInjectingStore`. Random workloads are generated from a seed, which every
/// failure message prints; `POWER_LOSS_SEED=<n> swift test --filter PowerLoss` runs that seed alone.
/// (The seed fixes the workload, the crash point and the torn tails; thread interleavings vary.)
@Suite("Power loss: acknowledged writes survive")
struct PowerLossTests {
    // MARK: Random concurrent workloads

    @Test func randomConcurrentWorkloadsKeepEveryAcknowledgedWriteAfterPowerLoss() async throws {
        for seed in seeds(0..<300) {
            try await runWorkload(seed: seed, checkpoints: false, garble: false)
        }
    }

    @Test func randomWorkloadsWithConcurrentCheckpointsKeepEveryAcknowledgedWriteAfterPowerLoss() async throws {
        for seed in seeds(1000..<1300) {
            try await runWorkload(seed: seed, checkpoints: true, garble: false)
        }
    }

    /// Torn tails with a garbage byte: a garbled record followed by intact (unacknowledged) ones
    /// looks like mid-log corruption, which the engine refuses by default; the damage must lie in
    /// bytes that were never synced, and truncating there must lose nothing acknowledged.
    @Test func randomWorkloadsWithGarbledTornTailsLoseNothingAcknowledged() async throws {
        for seed in seeds(2000..<2150) {
            try await runWorkload(seed: seed, checkpoints: seed % 2 == 0, garble: true)
        }
    }

    // MARK: Failed syncs and appends

    @Test func failedSyncFailsTheWriteInFlight() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        try await db.put("a", v("1"))
        store.inject(.logSync)
        let error = await #expect(throws: DatabaseError.self) { try await db.put("b", v("2")) }
        #expect(ioErrno(of: error) == EIO)
        #expect(try db.get("b") == nil)
        closeDatabase(db)
    }

    @Test func failedSyncDisablesLaterWritesButNotReads() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        try await db.put("a", v("1"))
        store.inject(.logSync)
        _ = try? await db.put("b", v("2"))
        for key in ["a", "c"] as [Key] {
            let error = await #expect(throws: DatabaseError.self) { try await db.put(key, v("3")) }
            #expect(isWritesDisabled(error), "\(String(describing: error))")
        }
        let batchError = await #expect(throws: DatabaseError.self) {
            var batch = WriteBatch()
            batch.put("x", v("x"))
            batch.delete("a")
            try await db.write(batch)
        }
        #expect(isWritesDisabled(batchError))
        #expect(try db.get("a") == v("1"))
        #expect(db.stats.writesDisabledReason != nil)
        #expect(failed(await checkpointResult(db)))
        closeDatabase(db)
    }

    @Test func reopenAfterFailedSyncAcceptsWritesAndKeepsEverythingAcknowledged() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        let acknowledged = try await putKeys(db, prefix: "before", count: 20)
        store.inject(.logSync)
        _ = try? await db.put("lost?", v("in flight"))
        closeDatabase(db)
        // No power loss: the failed round's bytes are still in the file; either state is allowed.
        let reopened = try openDatabase(store)
        try expectContents(reopened, acknowledged, inFlight: ["lost?": v("in flight")], "reopen after a failed sync")
        try await reopened.put("after", v("ok"))
        #expect(try reopened.get("after") == v("ok"))
        closeDatabase(reopened)
    }

    @Test func failedSyncThenPowerLossKeepsEverythingAcknowledged() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        let acknowledged = try await putKeys(db, prefix: "before", count: 20)
        store.inject(.logSync)
        _ = try? await db.put("lost", v("in flight"))
        store.powerLoss(keepUnsynced: { _, _ in 0 })
        closeDatabase(db)
        store.powerOn()
        let reopened = try openDatabase(store)
        try expectContents(reopened, acknowledged, "failed sync, then power loss")
        try await reopened.put("after", v("ok"))
        closeDatabase(reopened)
    }

    @Test func failedAppendDisablesWritesUntilReopen() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        let acknowledged = try await putKeys(db, prefix: "before", count: 10)
        store.inject(.logAppend)
        let error = await #expect(throws: DatabaseError.self) { try await db.put("failed", v("x")) }
        #expect(ioErrno(of: error) == EIO)
        let later = await #expect(throws: DatabaseError.self) { try await db.delete("before-1") }
        #expect(isWritesDisabled(later))
        #expect(try db.get("before-1") == v("before-1"))
        closeDatabase(db)
        let reopened = try openDatabase(store)
        try expectContents(reopened, acknowledged, "reopen after a failed append")
        try await reopened.put("after", v("ok"))
        closeDatabase(reopened)
    }

    @Test func tornPartialAppendIsCutOnReopen() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        let acknowledged = try await putKeys(db, prefix: "before", count: 10)
        let size = store.contents(of: "logfile.0")?.count ?? -1
        store.inject(.logAppend, effect: .partialWrite(bytes: 7))
        _ = try? await db.put("torn", v("never acknowledged"))
        closeDatabase(db)
        let reopened = try openDatabase(store)
        #expect(reopened.recovery.tornTail?.offset == size)
        #expect(reopened.recovery.tornTail?.droppedBytes == 7)
        try expectContents(reopened, acknowledged, "reopen after a torn append")
        closeDatabase(reopened)
    }

    @Test func tornPartialAppendFollowedByPowerLossRecovers() async throws {
        let store = FaultInjectingStore()
        let db = try openDatabase(store)
        var acknowledged = try await putKeys(db, prefix: "before", count: 10)
        try await db.delete("before-3")
        acknowledged["before-3"] = nil
        let size = store.contents(of: "logfile.0")?.count ?? -1
        store.inject(.logAppend, effect: .partialWrite(bytes: 11))
        _ = try? await db.put("torn", v("never acknowledged"))
        let report = store.powerLoss(keepUnsynced: { _, unsynced in unsynced })
        #expect(report.tornFiles.map(\.keptBytes) == [11])
        closeDatabase(db)
        store.powerOn()
        let reopened = try openDatabase(store)
        #expect(reopened.recovery.tornTail == .init(
            file: "logfile.0", offset: size, droppedBytes: 11, reason: reopened.recovery.tornTail?.reason ?? ""))
        try expectContents(reopened, acknowledged, "power loss after a torn append")
        // The tail was cut durably: writes go on, and survive another power loss.
        try await reopened.put("after", v("ok"))
        acknowledged["after"] = v("ok")
        store.powerLoss()
        closeDatabase(reopened)
        store.powerOn()
        let again = try openDatabase(store)
        #expect(again.recovery.tornTail == nil)
        try expectContents(again, acknowledged, "second power loss")
        closeDatabase(again)
    }

    // MARK: Checkpoints interrupted at each step

    /// The operations of one checkpoint from generation 1 to 2, in the order they happen.
    @Test func checkpointStepsAreTheExpectedOperations() async throws {
        let steps = try await checkpointSteps()
        // createLog(2), rename checkpoint.2, rename newVersion, remove checkpoint.1, remove logfile.1,
        // remove version, promote newVersion.
        #expect(steps.filter { $0.operation == .directory }.count == 7)
        #expect(steps.filter { $0.operation == .markerWrite }.count == 1)
        #expect(steps.filter { $0.operation == .checkpointWrite }.count == 2)
    }

    @Test func powerLossAtEachStepOfACheckpointKeepsEveryAcknowledgedWrite() async throws {
        for step in try await checkpointSteps() {
            let context = "power loss at \(step)"
            let store = FaultInjectingStore()
            let (db, before) = try await preparedDatabase(store)
            store.inject(step.operation, skip: step.index, effect: .powerLoss)
            // Writers keep going while the checkpoint runs, until the power goes.
            let writer = Task { await writeUntilFailure(db, prefix: "during", limit: 300) }
            let result = await checkpointResult(db)
            let during = await writer.value
            #expect(failed(result), "\(context): the checkpoint should have been cut")
            #expect(!store.isPoweredOn, "\(context)")
            store.powerLoss()  // no-op if already off; keeps the test honest if the fault never fired
            closeDatabase(db, context)
            store.powerOn()

            let reopened = try openDatabase(store)
            let committed = step.operation == .directory && step.index >= 3
            #expect(reopened.recovery.finishedSwitch == (committed ? 2 : nil), "\(context): \(reopened.recovery.summary)")
            #expect(reopened.recovery.checkpointGeneration == (committed ? 2 : 1), "\(context)")
            try expectContents(reopened, before.merging(during.acknowledged) { $1 }, inFlight: during.inFlight, context)
            try expectCleanDirectory(store, context)
            // And it goes on: another checkpoint, another reopen.
            let next = try await reopened.checkpoint()
            closeDatabase(reopened)
            let again = try openDatabase(store)
            #expect(again.recovery.checkpointGeneration == next.generation, "\(context)")
            #expect(again.stats.keys == reopened.stats.keys, "\(context)")
            closeDatabase(again)
        }
    }

    @Test(arguments: [FaultInjectingStore.FaultEffect.fail, .failAfterApplying])
    func checkpointFailingAtEachStepThenPowerLossKeepsEveryAcknowledgedWrite(
        _ effect: FaultInjectingStore.FaultEffect
    ) async throws {
        for step in try await checkpointSteps() {
            try await failCheckpointThenReopen(at: step, effect: effect, powerLoss: true)
        }
    }

    /// As above, without a power loss: the reopen sees every change the failed step left, durable
    /// or not.
    @Test(arguments: [FaultInjectingStore.FaultEffect.fail, .failAfterApplying])
    func checkpointFailingAtEachStepThenReopenKeepsEveryAcknowledgedWrite(
        _ effect: FaultInjectingStore.FaultEffect
    ) async throws {
        for step in try await checkpointSteps() {
            try await failCheckpointThenReopen(at: step, effect: effect, powerLoss: false)
        }
    }

    /// Without a power loss: the database keeps running after a failed checkpoint, and the next
    /// checkpoint succeeds and leaves only its own files. (Regressions caught here: a segment whose
    /// creation failed was left behind, so every later rotation failed with EEXIST; a temporary whose
    /// rename failed was left behind; a checkpoint that failed past its commit point was never
    /// removed by the next one.)
    @Test(arguments: [FaultInjectingStore.FaultEffect.fail, .failAfterApplying])
    func checkpointAfterAFailedCheckpointSucceedsAndLeavesOnlyItsOwnFiles(
        _ effect: FaultInjectingStore.FaultEffect
    ) async throws {
        for step in try await checkpointSteps() {
            try await retryCheckpoint(after: step, effect: effect)
        }
    }

    /// Close must finish every checkpoint before it returns: `Database.close` releases the
    /// directory (FileStore: closes its descriptor and the LOCK), so a checkpoint that goes on
    /// afterwards writes to a directory another process may already have opened. Background
    /// checkpoints after every commit, writers in flight, close after a random acknowledgement;
    /// without injected faults, a checkpoint still in progress when close returns shows as a
    /// segment newer than `version`, a `newVersion`, or a temporary. The race is narrow: with the
    /// bug (close drained the checkpointer before closing the committer), a few rounds in 1000
    /// hit it, on 2 cores.
    @Test func closeLeavesNoCheckpointRunning() async throws {
        for round in 0..<1000 {
            let store = FaultInjectingStore()
            var options = quietOptions()
            options.checkpoints.enabled = true
            options.checkpoints.updates = 1
            let db = try openDatabase(store, options)
            let closeAfter = 3 + round % 25
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<6 {
                    group.addTask {
                        for index in 0..<40 {
                            do { try await db.put(Key("w\(writer)-\(index)"), [1]) } catch { return }
                            if writer == 0 && index == closeAfter { db.close() }
                        }
                    }
                }
            }
            let names = store.fileNames()
            let version = try store.readVersion() ?? 0
            let newest = try store.logGenerations().last ?? 0
            #expect(newest == version && !names.contains { $0.hasPrefix("newVersion") || $0.hasSuffix(".tmp") },
                    "round \(round): a checkpoint was still running when close returned: \(names), version \(version)")
        }
    }

    // MARK: Recovery and initialisation interrupted at each step

    /// A directory left by a checkpoint that failed past its commit point, with a torn log tail:
    /// recovery must finish the switch and cut the tail. Each of its steps is interrupted (power
    /// loss at it; or it fails, then power loss), and the next open must find everything acknowledged.
    @Test(arguments: [FaultInjectingStore.FaultEffect.powerLoss, .fail, .failAfterApplying])
    func interruptedRecoveryKeepsEveryAcknowledgedWrite(_ effect: FaultInjectingStore.FaultEffect) async throws {
        let (image, expected) = try await interruptedSwitchImage()
        let dryRun = FaultInjectingStore(files: image)
        let counts = try countOperations(dryRun) { try closeDatabase(openDatabase(dryRun)) }
        #expect(counts[.directory] == 3, "remove checkpoint.1, remove logfile.1, promote")
        #expect(counts[.logTruncate] == 1)
        for step in steps(from: counts) {
            let context = "\(effect) at \(step) of recovery"
            let store = FaultInjectingStore(files: image)
            store.inject(step.operation, skip: step.index, effect: effect)
            #expect(throws: DatabaseError.self, "\(context)") { try openDatabase(store) }
            store.powerLoss()
            store.powerOn()
            let reopened = try openDatabase(store)
            try expectContents(reopened, expected, context)
            try expectCleanDirectory(store, context)
            try await reopened.put("after", v("after"))
            closeDatabase(reopened)
        }
    }

    /// Opening an empty store writes `version` then creates logfile.0; a power loss at any step
    /// (notably between the two) must leave a directory that opens.
    @Test func powerLossAtEachStepOfInitialisationLeavesAnOpenableDirectory() async throws {
        let dryRun = FaultInjectingStore()
        let counts = try countOperations(dryRun) { try closeDatabase(openDatabase(dryRun)) }
        #expect(counts[.directory] == 2 && counts[.markerWrite] == 1, "\(counts)")
        for step in steps(from: counts) {
            let context = "power loss at \(step) of initialisation"
            let store = FaultInjectingStore()
            store.inject(step.operation, skip: step.index, effect: .powerLoss)
            #expect(throws: DatabaseError.self, "\(context)") { try openDatabase(store) }
            store.powerOn()
            do {
                let db = try openDatabase(store)
                try await db.put("a", v("a"))
                closeDatabase(db)
            } catch {
                Issue.record("\(context): reopening failed: \(error); files: \(store.fileNames())")
            }
        }
    }
}

// MARK: - The random workload

/// One writer's operation. Keys are indexes into the writer's own keys.
private enum WorkloadOperation: Sendable, CustomStringConvertible {
    case put(Int, [UInt8])
    case delete(Int)
    case batch([(key: Int, value: [UInt8]?)])

    func apply(to state: inout [Int: [UInt8]]) {
        switch self {
        case .put(let key, let value): state[key] = value
        case .delete(let key): state[key] = nil
        case .batch(let entries): for entry in entries { state[entry.key] = entry.value }
        }
    }

    var description: String {
        switch self {
        case .put(let key, let value): "put(\(key), \(value.count) bytes)"
        case .delete(let key): "delete(\(key))"
        case .batch(let entries): "batch(\(entries.map { "\($0.key)=\($0.value.map { "\($0.count)b" } ?? "del")" }))"
        }
    }
}

private struct WriterOutcome: Sendable {
    let writer: Int
    /// The writer's keys after its last acknowledged operation.
    let acknowledged: [Int: [UInt8]]
    /// The operation that failed (submitted, not acknowledged), if any: the writer stopped there.
    let inFlight: WorkloadOperation?
    let acknowledgedCount: Int
}

/// The key `index` of writer `writer`: binary, with a zero byte, distinct per writer.
private func workloadKey(_ writer: Int, _ index: Int) -> Key {
    Key([0x77, UInt8(writer), 0x00, UInt8(index)])
}

private func randomValue(_ random: inout SeededRandom) -> [UInt8] {
    let length: Int
    switch random.next(below: 10) {
    case 0: length = 0
    case 1, 2: length = 100 + random.next(below: 500)
    default: length = 1 + random.next(below: 32)
    }
    return (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

private func randomOperation(_ random: inout SeededRandom, keys: Int) -> WorkloadOperation {
    switch random.next(below: 20) {
    case 0..<9: return .put(random.next(below: keys), randomValue(&random))
    case 9..<13: return .delete(random.next(below: keys))
    default:
        var chosen = Array(0..<keys)
        var entries: [(key: Int, value: [UInt8]?)] = []
        for _ in 0..<(2 + random.next(below: min(3, keys - 1))) {
            let key = chosen.remove(at: random.next(below: chosen.count))
            entries.append((key, random.next(below: 4) == 0 ? nil : randomValue(&random)))
        }
        return .batch(entries)
    }
}

private func perform(_ operation: WorkloadOperation, writer: Int, on db: Database) async throws {
    switch operation {
    case .put(let key, let value): try await db.put(workloadKey(writer, key), value)
    case .delete(let key): try await db.delete(workloadKey(writer, key))
    case .batch(let entries):
        var batch = WriteBatch()
        for entry in entries {
            if let value = entry.value {
                batch.put(workloadKey(writer, entry.key), value)
            } else {
                batch.delete(workloadKey(writer, entry.key))
            }
        }
        try await db.write(batch)
    }
}

/// Where a random workload loses power.
private enum CrashPoint: CustomStringConvertible {
    /// Right after the n-th acknowledgement (counted over all writers), while writers still run.
    case afterAcknowledgements(Int)
    /// As the n-th operation of this kind starts (from the moment the workload starts), tearing
    /// unsynced tails: inside a group commit (between its append and the end of its sync), or
    /// inside a checkpoint's version switch.
    case atOperation(FaultInjectingStore.Operation, Int)
    /// The n-th log sync fails (the round stays unsynced, writes are disabled); once the writers
    /// have stopped, the power goes, keeping most of the unsynced bytes with one early byte garbled,
    /// so that intact records often follow the damaged one.
    case garbledAfterSyncFailure(Int)

    var description: String {
        switch self {
        case .afterAcknowledgements(let count): "after acknowledgement \(count)"
        case .atOperation(let operation, let index): "at \(operation) #\(index)"
        case .garbledAfterSyncFailure(let index): "at log sync #\(index), garbled"
        }
    }
}

/// One seed: concurrent writers on their own keys, checkpoints (explicit at random moments, and in
/// some seeds background ones), a power loss at a random point while writers still run, then
/// reopen and check every writer's keys.
private func runWorkload(seed: UInt64, checkpoints: Bool, garble: Bool) async throws {
    var random = SeededRandom(seed: seed)
    let writers = 5 + random.next(below: 4)
    let keysPerWriter = 3 + random.next(below: 4)
    let plans: [[WorkloadOperation]] = (0..<writers).map { _ in
        (0..<(4 + random.next(below: 57))).map { _ in randomOperation(&random, keys: keysPerWriter) }
    }
    let total = plans.reduce(0) { $0 + $1.count }
    let crash: CrashPoint
    switch garble && random.next(below: 3) != 0 ? 6 : random.next(below: checkpoints ? 6 : 4) {
    case 6: crash = .garbledAfterSyncFailure(random.next(below: max(1, total / 2)))
    case 0, 1: crash = .afterAcknowledgements(1 + random.next(below: total))
    case 2, 3: crash = .atOperation(.logSync, random.next(below: max(1, total / 2)))
    case 4: crash = .atOperation(.directory, random.next(below: 12))
    default: crash = .atOperation(.checkpointWrite, random.next(below: 4))
    }
    var checkpointAt: Set<Int> = []
    var options = quietOptions()
    if checkpoints {
        for _ in 0..<(1 + random.next(below: 3)) { checkpointAt.insert(random.next(below: total / 2 + 1)) }
        if random.next(below: 3) == 0 {
            options.checkpoints.enabled = true
            options.checkpoints.updates = 5 + random.next(below: 20)
        }
    }
    let tearSeed = random.next()
    let context = "seed \(seed), crash \(crash) (rerun: POWER_LOSS_SEED=\(seed) swift test --filter PowerLoss)"

    let store = FaultInjectingStore()
    let db = try openDatabase(store, options)
    let shared = WorkloadShared()
    let crashAfter: Int
    switch crash {
    case .afterAcknowledgements(let count):
        crashAfter = count
    case .atOperation(let operation, let index):
        crashAfter = -1
        store.inject(operation, skip: index, effect: .tornPowerLoss(seed: tearSeed, garble: garble))
    case .garbledAfterSyncFailure(let index):
        crashAfter = -1
        store.inject(.logSync, skip: index)
    }
    let checkpointStarts = checkpointAt
    if checkpointStarts.contains(0) { db.checkpoint { _ in } }
    let outcomes = await withTaskGroup(of: WriterOutcome.self) { group in
        for (writer, plan) in plans.enumerated() {
            group.addTask {
                var state: [Int: [UInt8]] = [:]
                var acknowledged = 0
                for operation in plan {
                    do {
                        try await perform(operation, writer: writer, on: db)
                    } catch {
                        return WriterOutcome(writer: writer, acknowledged: state, inFlight: operation, acknowledgedCount: acknowledged)
                    }
                    operation.apply(to: &state)
                    acknowledged += 1
                    let count = shared.acknowledgements.add(1, ordering: .relaxed).newValue
                    if checkpointStarts.contains(count) { db.checkpoint { _ in } }
                    if count == crashAfter { store.powerLoss(seed: tearSeed, garble: garble) }
                }
                return WriterOutcome(writer: writer, acknowledged: state, inFlight: nil, acknowledgedCount: acknowledged)
            }
        }
        var outcomes: [WriterOutcome] = []
        for await outcome in group { outcomes.append(outcome) }
        return outcomes
    }
    store.clearFaults()  // one not reached must not fire after the reopen
    if case .garbledAfterSyncFailure = crash {
        var tear = SeededRandom(seed: tearSeed)
        store.powerLoss { _, unsynced in
            let keep = unsynced - tear.next(below: unsynced / 8 + 1)
            return FaultInjectingStore.TornWrite(keep: keep, garbage: tear.next(below: max(1, keep / 2)))
        }
    } else if store.isPoweredOn {
        // The crash point was never reached (fewer operations than drawn): crash at the end.
        store.powerLoss(seed: tearSeed, garble: garble)
    }
    let powerLoss = store.lastPowerLoss
    closeDatabase(db, context)
    store.powerOn()

    // Reopen. A garbled torn tail may look like mid-log corruption: allowed only inside the
    // unsynced bytes, and truncating there must keep everything acknowledged.
    let reopened: Database
    do {
        reopened = try openDatabase(store, quietOptions())
    } catch DatabaseError.corruptLog(let file, let offset, let reason) where garble {
        let torn = powerLoss?.tornFiles.first { $0.name == file }
        #expect(torn?.garbageOffset != nil && offset >= torn?.syncedBytes ?? .max,
                "\(context): corruption at \(file)@\(offset) (\(reason)) is not in a garbled unsynced tail: \(String(describing: torn))")
        var truncating = quietOptions()
        truncating.corruptLog = .truncate
        reopened = try openDatabase(store, truncating)
    }

    var expectedKeys = 0
    for outcome in outcomes.sorted(by: { $0.writer < $1.writer }) {
        let observed = try (0..<keysPerWriter).map { try reopened.get(workloadKey(outcome.writer, $0)) }
        let old = (0..<keysPerWriter).map { outcome.acknowledged[$0] }
        var newState = outcome.acknowledged
        outcome.inFlight?.apply(to: &newState)
        let new = (0..<keysPerWriter).map { newState[$0] }
        #expect(observed == old || observed == new, """
            \(context): writer \(outcome.writer) after \(outcome.acknowledgedCount) acknowledged operations, \
            in flight: \(outcome.inFlight.map { "\($0)" } ?? "none"); \
            expected \(describe(old))\(new != old ? " or \(describe(new))" : ""), found \(describe(observed)); \
            recovery: \(reopened.recovery.summary)
            """)
        expectedKeys += observed.compactMap { $0 }.count
    }
    #expect(reopened.stats.keys == expectedKeys, "\(context): keys that no writer wrote")

    // The store is usable again, durably.
    try await reopened.put("after", v("after"))
    closeDatabase(reopened)
    let again = try openDatabase(store, quietOptions())
    #expect(try again.get("after") == v("after"), "\(context)")
    #expect(again.stats.keys == expectedKeys + 1, "\(context)")
    closeDatabase(again)
}

/// What the writer tasks of one workload share.
private final class WorkloadShared: Sendable {
    let acknowledgements = Atomic<Int>(0)
}

private func describe(_ values: [[UInt8]?]) -> String {
    "[" + values.map { $0.map { "\($0.count)b:\($0.prefix(4).map { String($0, radix: 16) }.joined())" } ?? "nil" }
        .joined(separator: ", ") + "]"
}

// MARK: - Checkpoint steps

/// One operation of a checkpoint (or of recovery): the `index`-th operation of its kind.
private struct CheckpointStep: Sendable, CustomStringConvertible {
    let operation: FaultInjectingStore.Operation
    let index: Int

    var description: String { "\(operation) #\(index)" }
}

private func steps(from counts: [FaultInjectingStore.Operation: Int]) -> [CheckpointStep] {
    FaultInjectingStore.Operation.allCases.flatMap { operation in
        (0..<(counts[operation] ?? 0)).map { CheckpointStep(operation: operation, index: $0) }
    }
}

/// The operations of each kind that `body` performs on `store`.
private func countOperations(
    _ store: FaultInjectingStore, _ body: () throws -> Void
) rethrows -> [FaultInjectingStore.Operation: Int] {
    let before = Dictionary(uniqueKeysWithValues: FaultInjectingStore.Operation.allCases.map { ($0, store.operationCount($0)) })
    try body()
    var counts: [FaultInjectingStore.Operation: Int] = [:]
    for operation in FaultInjectingStore.Operation.allCases {
        let count = store.operationCount(operation) - before[operation]!
        if count > 0 { counts[operation] = count }
    }
    return counts
}

/// Every operation of a checkpoint from generation 1 to 2 over `preparedDatabase` (measured on a
/// dry run; writers do not add any of these kinds).
private func checkpointSteps() async throws -> [CheckpointStep] {
    let store = FaultInjectingStore()
    let (db, _) = try await preparedDatabase(store)
    let before = Dictionary(uniqueKeysWithValues: FaultInjectingStore.Operation.allCases.map { ($0, store.operationCount($0)) })
    let result = try await db.checkpoint()
    #expect(result.generation == 2)
    var counts: [FaultInjectingStore.Operation: Int] = [:]
    for operation in FaultInjectingStore.Operation.allCases {
        counts[operation] = store.operationCount(operation) - before[operation]!
    }
    closeDatabase(db)
    return steps(from: counts).filter { $0.operation != .logAppend && $0.operation != .logSync }
}

/// A database at generation 1 (one checkpoint done) with log records after the checkpoint, and
/// its expected contents.
private func preparedDatabase(_ store: FaultInjectingStore) async throws -> (Database, [Key: [UInt8]]) {
    let db = try openDatabase(store)
    var expected = try await putKeys(db, prefix: "k", count: 20)
    let first = try await db.checkpoint()
    #expect(first.generation == 1)
    expected.merge(try await putKeys(db, prefix: "later", count: 10)) { $1 }
    for index in [1, 2, 3] {
        try await db.delete(Key("k-\(index)"))
        expected[Key("k-\(index)")] = nil
    }
    var batch = WriteBatch()
    batch.put("k-5", v("batched"))
    batch.delete("k-6")
    batch.put("new", [])
    try await db.write(batch)
    expected["k-5"] = v("batched")
    expected["k-6"] = nil
    expected["new"] = []
    return (db, expected)
}

/// Fails `step` of a checkpoint with `effect`, writes on (those writes land after the checkpoint
/// started: in logfile.2 if the segment was rotated), optionally loses power, then reopens twice.
private func failCheckpointThenReopen(
    at step: CheckpointStep, effect: FaultInjectingStore.FaultEffect, powerLoss: Bool
) async throws {
    let context = "\(effect) at \(step), then \(powerLoss ? "power loss" : "reopen")"
    let store = FaultInjectingStore()
    var (db, expected) = try await preparedDatabase(store)
    store.inject(step.operation, skip: step.index, effect: effect)
    #expect(failed(await checkpointResult(db)), "\(context)")
    // A failed checkpoint does not stop writers.
    expected.merge(try await putKeys(db, prefix: "after", count: 15)) { $1 }
    try await db.delete("k-4")
    expected["k-4"] = nil
    if powerLoss { store.powerLoss() }
    closeDatabase(db, context)
    store.powerOn()

    let reopened = try openDatabase(store)
    try expectContents(reopened, expected, context)
    try expectCleanDirectory(store, context)
    try await reopened.put("more", v("more"))
    _ = try await reopened.checkpoint()
    closeDatabase(reopened)
    let again = try openDatabase(store)
    expected["more"] = v("more")
    try expectContents(again, expected, context + ", reopened twice")
    closeDatabase(again)
}

/// Fails `step` of a checkpoint with `effect`, checkpoints again (which must succeed), then checks
/// that the directory holds only the new generation's files and survives a reopen.
private func retryCheckpoint(after step: CheckpointStep, effect: FaultInjectingStore.FaultEffect) async throws {
    let context = "\(effect) at \(step), then another checkpoint"
    let store = FaultInjectingStore()
    var (db, expected) = try await preparedDatabase(store)
    store.inject(step.operation, skip: step.index, effect: effect)
    #expect(failed(await checkpointResult(db)), "\(context)")
    expected.merge(try await putKeys(db, prefix: "after", count: 5)) { $1 }
    let result = await checkpointResult(db)
    guard case .success(let done) = result else {
        Issue.record("\(context): the second checkpoint failed: \(result)")
        closeDatabase(db)
        return
    }
    closeDatabase(db, context)
    #expect(store.fileNames() == ["checkpoint.\(done.generation)", "logfile.\(done.generation)", "version"], "\(context)")
    let reopened = try openDatabase(store)
    try expectContents(reopened, expected, context)
    closeDatabase(reopened)
}

/// The durable image of a directory where a checkpoint failed past its commit point (newVersion=2,
/// version=1, both checkpoints), writes went on, and the last one was torn by a power loss.
private func interruptedSwitchImage() async throws -> ([String: [UInt8]], [Key: [UInt8]]) {
    let store = FaultInjectingStore()
    var (db, expected) = try await preparedDatabase(store)
    store.inject(.directory, skip: 3)  // remove checkpoint.1 fails: after the commit point
    #expect(failed(await checkpointResult(db)))
    expected.merge(try await putKeys(db, prefix: "after", count: 8)) { $1 }
    store.inject(.logAppend, effect: .partialWrite(bytes: 9))
    _ = try? await db.put("torn", v("torn"))
    store.powerLoss(keepUnsynced: { _, unsynced in unsynced })
    closeDatabase(db)
    store.powerOn()
    #expect(store.fileNames() == ["checkpoint.1", "checkpoint.2", "logfile.1", "logfile.2", "newVersion", "version"])
    var image: [String: [UInt8]] = [:]
    for name in store.fileNames() { image[name] = store.contents(of: name) }
    return (image, expected)
}

// MARK: - Helpers

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

private func quietOptions() -> DatabaseOptions {
    var options = DatabaseOptions.forTests
    options.checkpoints.enabled = false
    return options
}

private func openDatabase(_ store: FaultInjectingStore, _ options: DatabaseOptions = quietOptions()) throws -> Database {
    try Database.open(logStore: store, snapshotStore: store, options: options)
}

/// Closes `db`, recording an issue (an engine bug) if close does not return within 30 s.
private func closeDatabase(_ db: Database, _ context: String = "") {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        db.close()
        done.signal()
    }
    thread.start()
    if done.wait(timeout: .now() + 30) == .timedOut {
        Issue.record("Database.close() did not return within 30 s (\(context))")
    }
}

/// Puts prefix-0 … prefix-(count-1), each with its own name as value; returns them.
private func putKeys(_ db: Database, prefix: String, count: Int) async throws -> [Key: [UInt8]] {
    var written: [Key: [UInt8]] = [:]
    for index in 0..<count {
        let name = "\(prefix)-\(index)"
        try await db.put(Key(name), v(name))
        written[Key(name)] = v(name)
    }
    return written
}

/// Puts keys until one fails or `limit` succeed: the acknowledged ones, and the one in flight.
private func writeUntilFailure(
    _ db: Database, prefix: String, limit: Int
) async -> (acknowledged: [Key: [UInt8]], inFlight: [Key: [UInt8]]) {
    var acknowledged: [Key: [UInt8]] = [:]
    for index in 0..<limit {
        let name = "\(prefix)-\(index)"
        do {
            try await db.put(Key(name), v(name))
        } catch {
            return (acknowledged, [Key(name): v(name)])
        }
        acknowledged[Key(name)] = v(name)
    }
    return (acknowledged, [:])
}

private func checkpointResult(_ db: Database) async -> Result<CheckpointResult, DatabaseError> {
    await withCheckedContinuation { continuation in
        db.checkpoint { continuation.resume(returning: $0) }
    }
}

/// Checks that `db` holds exactly `expected`, except that each key of `inFlight` (new keys, written
/// by a write that was never acknowledged) may be missing or hold its in-flight value.
private func expectContents(
    _ db: Database, _ expected: [Key: [UInt8]], inFlight: [Key: [UInt8]] = [:], _ context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    var mismatches: [String] = []
    for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
        let actual = try db.get(key)
        if actual != value { mismatches.append("\(key): expected \(value.count) bytes, found \(actual.map { "\($0.count) bytes" } ?? "nil")") }
    }
    var extra = 0
    for (key, value) in inFlight where expected[key] == nil {
        let actual = try db.get(key)
        if actual == value { extra += 1 } else if actual != nil { mismatches.append("\(key): in-flight value garbled") }
    }
    #expect(mismatches.isEmpty, "\(context): \(mismatches.count) keys differ: \(mismatches.prefix(5)); recovery: \(db.recovery.summary)",
            sourceLocation: sourceLocation)
    #expect(db.stats.keys == expected.count + extra, "\(context): key count; recovery: \(db.recovery.summary)",
            sourceLocation: sourceLocation)
}

/// After a successful recovery the directory holds version, checkpoint.N (N > 0) and logfile.N…M:
/// no temporary, no newVersion, no stale checkpoint or segment.
private func expectCleanDirectory(
    _ store: FaultInjectingStore, _ context: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let names = store.fileNames()
    let version = try store.readVersion()
    let checkpoints = names.filter { $0.hasPrefix("checkpoint.") }
    let others = names.filter { !$0.hasPrefix("checkpoint.") && !$0.hasPrefix("logfile.") && $0 != "version" }
    #expect(others.isEmpty, "\(context): unexpected files \(others)", sourceLocation: sourceLocation)
    #expect(checkpoints == (version == 0 ? [] : ["checkpoint.\(version ?? 0)"]), "\(context): \(names)", sourceLocation: sourceLocation)
    #expect(try store.logGenerations().first == version, "\(context): \(names)", sourceLocation: sourceLocation)
}

private func ioErrno(of error: DatabaseError?) -> Int32? {
    if case .io(_, _, let code)? = error { return code }
    return nil
}

private func isWritesDisabled(_ error: DatabaseError?) -> Bool {
    if case .writesDisabled? = error { return true }
    return false
}

private func failed<T>(_ result: Result<T, DatabaseError>) -> Bool {
    if case .failure = result { return true }
    return false
}

/// The seeds to run: `range`, or only the seed in POWER_LOSS_SEED if it is set.
private func seeds(_ range: Range<UInt64>) -> [UInt64] {
    if let text = ProcessInfo.processInfo.environment["POWER_LOSS_SEED"], let seed = UInt64(text) {
        return range.contains(seed) ? [seed] : []
    }
    return Array(range)
}

extension SeededRandom {
    /// A number in 0..<bound (bound > 0); the tiny modulo bias does not matter here.
    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}
