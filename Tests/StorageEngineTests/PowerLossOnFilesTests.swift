import Foundation
import Synchronization
import Testing
@testable import StorageEngine
import WireProtocol
import StorageEngineTesting

/// Power loss on the real files: the real `FileStore` (the zeros written ahead, directory creation
/// and renames, the checkpoint's staged fdatasyncs, the version switch, the resync install) runs
/// on real files, `SyncRecorder` records what each sync made durable, and the power goes at a
/// seeded moment: after an acknowledgement, or as a given sync starts (inside a group commit,
/// inside a checkpoint, during the first open, during a snapshot install). The directory is then
/// rewritten as that power loss could have left it (unsynced bytes dropped, kept in part or
/// garbled; entries as of their directory's last sync), reopened with a plain `FileStore`, and
/// every acknowledged write checked as `PowerLossTests` checks it: acknowledged puts are there
/// with their value, acknowledged deletes stay deleted, a write in flight shows its old or its
/// new state, a batch all or nothing.
///
/// Each failure prints its seed; `POWER_LOSS_FILES_SEED=<n> swift test --filter PowerLossOnFiles`
/// runs that seed alone (the seed fixes the workload, the cut and the tear; thread interleavings vary).
@Suite("Power loss on the real files", .opensDataDirectories)
struct PowerLossOnFilesTests {
    @Test func randomWorkloadsKeepEveryAcknowledgedWrite() async throws {
        for seed in seeds(0..<400) {
            try await runWorkload(seed: seed, checkpoints: false)
        }
    }

    @Test func randomWorkloadsWithCheckpointsKeepEveryAcknowledgedWrite() async throws {
        for seed in seeds(1000..<1400) {
            try await runWorkload(seed: seed, checkpoints: true)
        }
    }

    /// The first open with `create`: nested directories made, `version` 0 and logfile.0 written.
    /// The power goes as each of its syncs starts (and after it), with each tear.
    @Test func powerLossDuringTheFirstOpenLeavesADirectoryThatOpens() async throws {
        let syncs = try await withScratchDirectory { root in
            let recorder = try SyncRecorder(root: root)
            try await firstOpen(root: root, recorder: recorder, context: "dry run")
            return recorder.syncCount()
        }
        #expect(syncs >= 8, "mkdir ×3 and their parent, version, logfile.0, a put: \(syncs) syncs")
        for cut in 0...syncs {
            for (index, tear) in tears(seed: UInt64(cut)).enumerated() {
                let seed = UInt64(3000 + cut * 3 + index)
                guard seeds(3000..<4000).contains(seed) else { continue }
                try await withScratchDirectory { root in
                    let recorder = try SyncRecorder(root: root)
                    recorder.cutAtSync(cut)
                    let context = "seed \(seed): first open, power lost at sync #\(cut), \(tear) (rerun: POWER_LOSS_FILES_SEED=\(seed))"
                    let acknowledged = try await firstOpen(root: root, recorder: recorder, context: context)
                    try recorder.losePower(tear)
                    let directory = root + "/a/b/db"
                    do {
                        let db = try Database.open(directory: directory, create: true, options: quietOptions())
                        for (key, value) in acknowledged {
                            #expect(try db.get(key) == value, "\(context): \(key)")
                        }
                        #expect(db.stats.keys >= acknowledged.count && db.stats.keys <= 3, "\(context)")
                        try await db.put("after", v("after"))
                        db.close()
                        let again = try Database.open(directory: directory, options: quietOptions())
                        #expect(try again.get("after") == v("after"), "\(context)")
                        again.close()
                    } catch {
                        Issue.record("\(context): reopening failed: \(error); files: \(listing(root))")
                    }
                }
            }
        }
    }

    /// Found by this suite: an open trusted a data directory that already existed to be durable,
    /// and synced nothing above it. A first `-create` open that crashed (SIGKILL, not a power
    /// loss) between its mkdirs and their syncs leaves directories that exist but whose entries
    /// are not durable; the next open found them, acknowledged writes in them, and a power loss
    /// then took the whole directory with every acknowledged write. (The same holds for a
    /// directory another process just made, or an operator's `mkdir -p` a moment before.) Now
    /// every open syncs the data directory and each one above it, up to its file system's root.
    @Test(arguments: [true, false])
    func anOpenMakesAnExistingButUnsyncedDataDirectoryDurable(create: Bool) async throws {
        try await withScratchDirectory { root in
            let recorder = try SyncRecorder(root: root)
            let directory = root + "/a/b/db"
            // What the crashed open left: the directories, in the page cache only.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let session = try openSession(directory, recorder: recorder, create: create)
            try await session.0.put("acknowledged", v("durable"))
            recorder.cut()
            close(session)
            try recorder.losePower()
            do {
                let db = try Database.open(directory: directory, options: quietOptions())
                #expect(try db.get("acknowledged") == v("durable"), "create: \(create)")
                db.close()
            } catch {
                Issue.record("create: \(create): the acknowledged write's directory is gone: \(error); files: \(listing(root))")
            }
        }
    }

    /// `-corrupt-log truncate` cuts a log at its corruption and syncs the cut; if the power goes
    /// before that sync, the cut is undone: the next open finds the same corruption at the same
    /// offset (nothing else lost, nothing misread), and once a truncating open's cut is synced,
    /// the directory opens without it and keeps every record before it. (The random workloads
    /// allow a first power loss's garbled bytes to be found again after a second power loss
    /// during the recovery for this reason.)
    @Test func aTruncationOfCorruptionIsUndoneByAPowerLossBeforeItsSync() async throws {
        try await withScratchDirectory { root in
            let directory = root + "/db"
            let db = try Database.open(directory: directory, create: true, options: quietOptions())
            for index in 0..<10 { try await db.put(Key("k\(index)"), v("value \(index)")) }
            db.close()
            // A byte in the middle of the records (before the zeros written ahead) garbled.
            let log = directory + "/logfile.0"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
            let recordsEnd = (bytes.lastIndex { $0 != 0 } ?? 0) + 1
            bytes[recordsEnd / 2] ^= 0xFF
            try TestSupport.writeFile(log, bytes)
            func corruptionOffset() throws -> Int? {
                do {
                    try Database.open(directory: directory, options: quietOptions()).close()
                    return nil
                } catch DatabaseError.corruptLog(_, let offset, _) {
                    return offset
                }
            }
            let offset = try #require(try corruptionOffset(), "the garbled record is mid-log corruption")
            var truncating = quietOptions()
            truncating.corruptLog = .truncate

            // The power goes as the truncation's sync starts.
            let recorder = try SyncRecorder(root: root)
            recorder.cutAtSync(0, of: .log)
            close(try openSession(directory, recorder: recorder, options: truncating))
            #expect(recorder.isFrozen, "the truncating open synced the log")
            recorder.cut()
            try recorder.losePower(.drop)
            #expect(try corruptionOffset() == offset)

            // Without a power loss, the cut is durable.
            let again = try SyncRecorder(root: root)
            close(try openSession(directory, recorder: again, options: truncating))
            again.cut()
            try again.losePower(.drop)
            #expect(try corruptionOffset() == nil)
            let reopened = try Database.open(directory: directory, options: quietOptions())
            defer { reopened.close() }
            let survivors = try (0..<10).filter { try reopened.get(Key("k\($0)")) != nil }
            #expect(!survivors.isEmpty && survivors == Array(0..<survivors.count), "a prefix of the records: \(survivors)")
            for index in survivors { #expect(try reopened.get(Key("k\(index)")) == v("value \(index)")) }
        }
    }

    /// A backup replacing its state with a primary's snapshot (`Database.installSnapshot`: the
    /// resync marker, the deletions, the rename, logfile.G, version G), the power going as each
    /// of its syncs starts: the reopen finds the old state whole, or the new one whole (and it
    /// must be the new one if the install was acknowledged), or refuses with `.incompleteResync`
    /// (only if it was not), after which discarding the directory leaves one that opens empty.
    @Test func powerLossDuringASnapshotInstallLeavesTheOldStateOrTheNewOrAMarkedDirectory() async throws {
        let (snapshot, primaryContents) = try await primarySnapshot()
        let syncs = try await withScratchDirectory { root in
            try await installSession(root: root, cut: nil, snapshot: snapshot, tear: .drop, seed: 0, primaryContents: primaryContents)
        }
        #expect(syncs >= 12, "marker, deletions, rename, segment, version, marker removal: \(syncs) syncs")
        for cut in 0...syncs {
            for (index, tear) in tears(seed: UInt64(cut)).enumerated() {
                let seed = UInt64(5000 + cut * 3 + index)
                guard seeds(5000..<6000).contains(seed) else { continue }
                try await withScratchDirectory { root in
                    _ = try await installSession(
                        root: root, cut: cut, snapshot: snapshot, tear: tear, seed: seed, primaryContents: primaryContents)
                }
            }
        }
    }
}

// MARK: - Sessions

/// As `TestSupport.withTemporaryDirectory`, in /dev/shm when it is there: the recorder decides
/// what is durable, so the file system's own syncs only cost time (an fsync here takes 2–30 ms
/// under load; on tmpfs nothing), and `FileStore` makes the same calls either way.
private func withScratchDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    guard access("/dev/shm", W_OK) == 0 else { return try await TestSupport.withTemporaryDirectory(body) }
    let path = "/dev/shm/small-db-power-loss-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }

private func quietOptions() -> DatabaseOptions {
    var options = DatabaseOptions()
    options.checkpoints.enabled = false
    return options
}

/// A `FileStore` on `directory` reporting to `recorder`, and a database over it. Close both
/// with `close`. Checkpoints sync every 512 bytes (so that a small one has staged syncs to cut
/// between) and segments write zeros 4 KiB ahead (so that small workloads cross the step, and a
/// debug build's recovery does not scan a megabyte of zeros after every cut).
private func openSession(
    _ directory: String, recorder: SyncRecorder, create: Bool = false, options: DatabaseOptions = quietOptions()
) throws -> (Database, FileStore) {
    let store = try FileStore(
        directory: directory, create: create, observer: recorder, checkpointSyncInterval: 512, writeAheadStep: 4 << 10)
    do {
        return (try Database.open(logStore: store, snapshotStore: store, options: options), store)
    } catch {
        store.close()
        throw error
    }
}

private func close(_ session: (Database, FileStore)) {
    session.0.close()
    session.1.close()
}

/// Opens root/a/b/db with `create` (none of it exists), puts three keys and cuts the power (if
/// it is still on): returns the keys acknowledged before the cut.
@discardableResult
private func firstOpen(root: String, recorder: SyncRecorder, context: String) async throws -> [Key: [UInt8]] {
    let session = try openSession(root + "/a/b/db", recorder: recorder, create: true)
    defer { close(session) }
    var acknowledged: [Key: [UInt8]] = [:]
    for index in 0..<3 {
        let key = Key("k\(index)")
        try await session.0.put(key, v("value \(index)"))
        guard !recorder.isFrozen else { break }
        acknowledged[key] = v("value \(index)")
    }
    recorder.cut()  // before the close, if the drawn sync was never reached
    return acknowledged
}

/// A primary's snapshot at generation 3, made in memory, and its contents.
private func primarySnapshot() async throws -> (ReplicaSnapshot, [Key: [UInt8]]) {
    let store = FaultInjectingStore()
    let primary = try Database.open(logStore: store, snapshotStore: store, options: quietOptions())
    defer { primary.close() }
    var contents: [Key: [UInt8]] = [:]
    for round in 0..<3 {
        for index in 0..<6 {
            let key = Key("p\(index)")
            let value = v("primary \(round) \(index)") + [UInt8](repeating: UInt8(round), count: 40 * index)
            try await primary.put(key, value)
            contents[key] = value
        }
        if round < 2 { _ = try await primary.checkpoint() }
    }
    try await primary.delete("p0")
    contents["p0"] = nil
    let snapshot = await withCheckedContinuation { continuation in
        primary.snapshotForReplica { continuation.resume(returning: $0) }
    }
    return (try snapshot.get(), contents)
}

/// One backup session: old state (with a checkpoint, so there are files of two generations), then
/// the install with the power going at sync `cut` of it (none: count them), puts after it, power
/// loss, reopen and check. Returns the install's syncs.
private func installSession(
    root: String, cut: Int?, snapshot: ReplicaSnapshot, tear: SyncRecorder.Tear, seed: UInt64,
    primaryContents: [Key: [UInt8]]
) async throws -> Int {
    let context = "seed \(seed): snapshot install, power lost at sync #\(cut.map(String.init) ?? "none"), \(tear) "
        + "(rerun: POWER_LOSS_FILES_SEED=\(seed))"
    let directory = root + "/db"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    let recorder = try SyncRecorder(root: root)
    let session = try openSession(directory, recorder: recorder)
    let db = session.0
    var old: [Key: [UInt8]] = [:]
    for index in 0..<8 {
        try await db.put(Key("b\(index)"), v("backup \(index)"))
        old[Key("b\(index)")] = v("backup \(index)")
    }
    _ = try await db.checkpoint()
    try await db.put("b9", v("backup 9"))
    try await db.delete("b1")
    old["b9"] = v("backup 9")
    old["b1"] = nil
    let before = recorder.syncCount()
    if let cut { recorder.cutAtSync(cut) }
    let result = await withCheckedContinuation { continuation in
        db.installSnapshot(snapshot) { continuation.resume(returning: $0) }
    }
    let installed = !recorder.isFrozen
    let syncs = recorder.syncCount() - before
    #expect(throws: Never.self, "\(context)") { try result.get() }
    var new = primaryContents
    var inFlight: [Key: [UInt8]] = [:]
    if installed {
        for index in 0..<3 {
            let key = Key("after\(index)")
            try await db.put(key, v("after \(index)"))
            if recorder.isFrozen { inFlight[key] = v("after \(index)"); break }
            new[key] = v("after \(index)")
        }
    }
    recorder.cut()
    close(session)
    try recorder.losePower(tear)

    let reopened: Database
    do {
        reopened = try Database.open(directory: directory, options: quietOptions())
    } catch DatabaseError.incompleteResync {
        #expect(!installed, "\(context): an acknowledged install left the resync marker")
        #expect(try Database.discardIncompleteResync(directory: directory), "\(context)")
        let emptied = try Database.open(directory: directory, options: quietOptions())
        #expect(emptied.stats.keys == 0, "\(context): \(emptied.recovery.summary)")
        try await emptied.put("after", v("after"))
        emptied.close()
        return syncs
    } catch {
        Issue.record("\(context): reopening failed: \(error); files: \(listing(root))")
        return syncs
    }
    defer { reopened.close() }
    let matchesNew = try matches(reopened, new, inFlight: inFlight)
    let matchesOld = try !installed && matches(reopened, old, inFlight: [:])
    #expect(matchesNew || matchesOld, """
        \(context): neither the \(installed ? "acknowledged " : "")new state nor the old one: \
        \(reopened.stats.keys) keys; recovery: \(reopened.recovery.summary); files: \(listing(root))
        """)
    if matchesNew { #expect(reopened.recovery.checkpointGeneration == snapshot.generation, "\(context)") }
    return syncs
}

/// Whether `db` holds exactly `expected`, plus any of `inFlight` (new keys) with their value.
private func matches(_ db: Database, _ expected: [Key: [UInt8]], inFlight: [Key: [UInt8]]) throws -> Bool {
    var extra = 0
    for (key, value) in inFlight where try db.get(key) != nil {
        guard try db.get(key) == value else { return false }
        extra += 1
    }
    for (key, value) in expected where try db.get(key) != value { return false }
    return db.stats.keys == expected.count + extra
}

private func listing(_ root: String) -> [String] {
    (FileManager.default.subpaths(atPath: root) ?? []).sorted()
}

private func garbles(_ tear: SyncRecorder.Tear) -> Bool {
    if case .garble = tear { return true }
    return false
}

/// The three tears, drawing from `seed`.
private func tears(seed: UInt64) -> [SyncRecorder.Tear] {
    [.drop, .keepPrefix(seed: seed &* 31 &+ 7), .garble(seed: seed &* 131 &+ 11)]
}

/// The seeds to run: `range`, or only the seed in POWER_LOSS_FILES_SEED if it is set.
private func seeds(_ range: Range<UInt64>) -> [UInt64] {
    if let text = ProcessInfo.processInfo.environment["POWER_LOSS_FILES_SEED"], let seed = UInt64(text) {
        return range.contains(seed) ? [seed] : []
    }
    return Array(range)
}

// MARK: - The random workload

/// One writer's operation. Keys are indexes into the writer's own keys.
private enum Operation: Sendable, CustomStringConvertible {
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
    /// The writer's keys after its last operation acknowledged before the cut.
    let acknowledged: [Int: [UInt8]]
    /// The operation acknowledged only after the cut, if any: the writer stopped there.
    let inFlight: Operation?
    let acknowledgedCount: Int
}

/// Where the power goes.
private enum Cut: CustomStringConvertible {
    /// Right after the n-th acknowledgement (over all writers), while writers still run.
    case afterAcknowledgement(Int)
    /// As the n-th sync of a kind starts (from the start of the workload).
    case atSync(SyncRecorder.SyncKind, Int)

    var description: String {
        switch self {
        case .afterAcknowledgement(let count): "after acknowledgement \(count)"
        case .atSync(let kind, let index): "as \(kind) sync #\(index) starts"
        }
    }
}

private func workloadKey(_ writer: Int, _ index: Int) -> Key {
    Key([0x77, UInt8(writer), 0x00, UInt8(index)])
}

private func randomValue(_ random: inout SeededRandom, large: Bool) -> [UInt8] {
    let length: Int
    switch random.next(below: 10) {
    case 0: length = 0
    case 1, 2: length = large ? 2_000 + random.next(below: 6_000) : 100 + random.next(below: 500)
    default: length = 1 + random.next(below: 32)
    }
    return (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

private func randomOperation(_ random: inout SeededRandom, keys: Int, large: Bool) -> Operation {
    switch random.next(below: 20) {
    case 0..<9: return .put(random.next(below: keys), randomValue(&random, large: large))
    case 9..<13: return .delete(random.next(below: keys))
    default:
        var chosen = Array(0..<keys)
        var entries: [(key: Int, value: [UInt8]?)] = []
        for _ in 0..<(2 + random.next(below: min(3, keys - 1))) {
            let key = chosen.remove(at: random.next(below: chosen.count))
            entries.append((key, random.next(below: 4) == 0 ? nil : randomValue(&random, large: large)))
        }
        return .batch(entries)
    }
}

private func perform(_ operation: Operation, writer: Int, on db: Database) async throws {
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

private final class WorkloadShared: Sendable {
    let acknowledgements = Atomic<Int>(0)
}

/// One seed: concurrent writers on their own keys, checkpoints (explicit at random moments, and
/// in some seeds background ones), the power going at a random moment, then reopen and check
/// every writer's keys. One seed in eight writes values of 2–8 KB, so that one append can span
/// several steps of zeros written ahead.
private func runWorkload(seed: UInt64, checkpoints: Bool) async throws {
    var random = SeededRandom(seed: seed)
    let large = random.next(below: 8) == 0
    let writers = 3 + random.next(below: 3)
    let keysPerWriter = 3 + random.next(below: 3)
    let plans: [[Operation]] = (0..<writers).map { _ in
        (0..<(3 + random.next(below: 12))).map { _ in randomOperation(&random, keys: keysPerWriter, large: large) }
    }
    let total = plans.reduce(0) { $0 + $1.count }
    let cut: Cut
    switch random.next(below: checkpoints ? 6 : 4) {
    case 0, 1: cut = .afterAcknowledgement(1 + random.next(below: total))
    case 2: cut = .atSync(.log, random.next(below: total))
    case 3: cut = .atSync(.any, random.next(below: total + 8))
    default: cut = .atSync(.notLog, random.next(below: 30))  // mostly inside checkpoints
    }
    var checkpointAt: Set<Int> = []
    var options = quietOptions()
    if checkpoints {
        for _ in 0..<(1 + random.next(below: 3)) { checkpointAt.insert(random.next(below: total / 2 + 1)) }
        if random.next(below: 3) == 0 {
            options.checkpoints.enabled = true
            options.checkpoints.updates = 3 + random.next(below: 10)
        }
    }
    let tear = tears(seed: random.next())[random.next(below: 3)]
    // In one seed in three the power goes again during the recovery that follows (as its n-th
    // sync starts: a torn tail's cut, the end of an interrupted switch, a deletion), before the
    // final reopen.
    let recoveryCut: Int? = random.next(below: 3) == 0 ? random.next(below: 8) : nil
    let recoveryTear = tears(seed: random.next())[random.next(below: 3)]
    let context = "seed \(seed), power lost \(cut), \(tear)"
        + (recoveryCut.map { ", then at sync #\($0) of the recovery, \(recoveryTear)" } ?? "")
        + " (rerun: POWER_LOSS_FILES_SEED=\(seed) swift test --filter PowerLossOnFiles)"

    try await withScratchDirectory { root in
        let directory = root + "/db"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let recorder = try SyncRecorder(root: root)
        let crashAfter: Int
        switch cut {
        case .afterAcknowledgement(let count): crashAfter = count
        case .atSync(let kind, let index):
            crashAfter = -1
            recorder.cutAtSync(index, of: kind)
        }
        let session = try openSession(directory, recorder: recorder, options: options)
        let db = session.0
        let shared = WorkloadShared()
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
                        // Acknowledged before the cut only if the recorder was not frozen when we saw it.
                        guard !recorder.isFrozen else {
                            return WriterOutcome(writer: writer, acknowledged: state, inFlight: operation, acknowledgedCount: acknowledged)
                        }
                        operation.apply(to: &state)
                        acknowledged += 1
                        let count = shared.acknowledgements.add(1, ordering: .relaxed).newValue
                        if checkpointStarts.contains(count) { db.checkpoint { _ in } }
                        if count == crashAfter { recorder.cut() }
                    }
                    return WriterOutcome(writer: writer, acknowledged: state, inFlight: nil, acknowledgedCount: acknowledged)
                }
            }
            var outcomes: [WriterOutcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        recorder.cut()  // if the drawn moment was never reached: at the end
        close(session)
        // The reports of the power losses whose tear garbled: corruption is allowed in the
        // unsynced bytes of any of them.
        var garbledReports: [SyncRecorder.Report] = []
        let report = try recorder.losePower(tear)
        if garbles(tear) { garbledReports.append(report) }
        if let recoveryCut {
            // Recovery under a second recorder; a garbled tail is truncated there (what the
            // operator would do), so the final reopen's corruption check is skipped.
            let again = try SyncRecorder(root: root)
            again.cutAtSync(recoveryCut)
            var options = quietOptions()
            if garbles(tear) { options.corruptLog = .truncate }
            do {
                close(try openSession(directory, recorder: again, options: options))
            } catch {
                Issue.record("\(context): the first recovery failed: \(error); files: \(listing(root))")
                return
            }
            again.cut()
            let recoveryReport = try again.losePower(recoveryTear)
            if garbles(recoveryTear) { garbledReports.append(recoveryReport) }
        }

        // Reopen. A garbled unsynced tail may look like mid-log corruption: allowed only inside
        // the unsynced bytes of a garbling power loss, and truncating there must keep everything
        // acknowledged. That includes the first one's when the power went again during the
        // recovery before its truncation of that corruption was synced (the truncation is then
        // undone, and the corruption is found again where it was).
        let reopened: Database
        do {
            reopened = try Database.open(directory: directory, options: quietOptions())
        } catch DatabaseError.corruptLog(let file, let offset, let reason) where !garbledReports.isEmpty {
            let relative = String(file.dropFirst(root.count + 1))
            let firstUnsynced = garbledReports.compactMap { $0.firstUnsyncedOffset[relative] }.min()
            #expect(firstUnsynced != nil && offset >= firstUnsynced!,
                    "\(context): corruption at \(relative)@\(offset) (\(reason)) is not in unsynced bytes (first at \(String(describing: firstUnsynced)))")
            var truncating = quietOptions()
            truncating.corruptLog = .truncate
            reopened = try Database.open(directory: directory, options: truncating)
        } catch {
            Issue.record("\(context): reopening failed: \(error); files: \(listing(root))")
            return
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
                recovery: \(reopened.recovery.summary); files: \(listing(root))
                """)
            expectedKeys += observed.compactMap { $0 }.count
        }
        #expect(reopened.stats.keys == expectedKeys, "\(context): keys that no writer wrote")

        // The directory is usable again, durably.
        try await reopened.put("after", v("after"))
        reopened.close()
        let again = try Database.open(directory: directory, options: quietOptions())
        #expect(try again.get("after") == v("after"), "\(context)")
        #expect(again.stats.keys == expectedKeys + 1, "\(context)")
        again.close()
    }
}

private func describe(_ values: [[UInt8]?]) -> String {
    "[" + values.map { $0.map { "\($0.count)b:\($0.prefix(4).map { String($0, radix: 16) }.joined())" } ?? "nil" }
        .joined(separator: ", ") + "]"
}
