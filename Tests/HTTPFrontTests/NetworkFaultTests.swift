import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real network faults between a primary and its backup (issue 10 §4): the two small_db_server
/// processes in network namespaces of their own, joined by a veth pair (`NamespacePair`); faults
/// made by nftables rules in the namespaces (a partition, random loss) and by a relay (delay);
/// processes killed with SIGKILL. Each test records every PUT it sent and its outcome
/// (`RecordingWriters`) and checks at the end, on the server that survived or was promoted, that
/// every acknowledged write is there (and every refused one is not), and that the two servers end
/// identical. The figures each test prints ("network fault figures: …") are in docs/PERFORMANCE.md.
///
/// They need root, `ip` and `nft` (CI runs as root; `.ci/run` installs iproute2 and nftables) and
/// are skipped with the reason otherwise. Each test has namespaces of its own (unique names), so
/// they run in parallel; the namespaces are deleted in a `defer` even when a test fails.
@Suite(
    "Network faults between small_db_server processes", .timeLimit(.minutes(3 * Sanitizer.slowdown)),
    .enabled(if: NamespacePair.unavailableReason == nil, Comment(rawValue: NamespacePair.unavailableReason ?? "")))
struct NetworkFaultTests {
    // MARK: 1. A partition with -repl-sync required

    /// A partition longer than the backup's heartbeat timeout (2 s) while writers PUT on a primary
    /// with `-repl-sync required` (ack timeout 1 s): the backup promotes itself; the primary, alone,
    /// refuses every write sent once it has detached the backup; after the partition the old
    /// primary rejoins as a backup of the new one. Not one acknowledged write is lost.
    @Test func partitionWithSyncRequiredLosesNoAcknowledgedWrite() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let a = try bed.startPrimary("a", in: bed.network.a, ["-repl-sync", "required", "-repl-ack-timeout", "1s"])
        let b = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, ["-repl-heartbeat-timeout", "2s"])
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        let writers = RecordingWriters(prefix: "required")
        writers.start(port: a.port)
        defer { writers.stop() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= 200 }, "the writers stalled\n\(bed.logs)")

        try bed.network.partition()
        let partitioned = ContinuousClock.now
        let detached = a.waitForFigures { !$0.inSync }
        let alone = ContinuousClock.now
        #expect(detached.holds, "the primary never detached its partitioned backup\n\(bed.logs)")
        let promoted = Poll.until(timeout: .seconds(20)) { (try? b.roleName()) == "primary" }
        let promotedAfter = ContinuousClock.now - partitioned
        #expect(promoted, "the partitioned backup never promoted itself\n\(bed.logs)")
        let refused = try a.put("while-alone", "refused")
        #expect(refused.status == 503 && refused.text.contains("write refused"), "\(refused)")
        #expect(try a.exchange(RawRequest.get("/v1/writable")).status == 503)
        try bed.network.heal()
        writers.stop()

        let acknowledgedAlone = writers.all.filter { $0.sent > alone && $0.outcome == .acknowledged }
        #expect(acknowledgedAlone.isEmpty, "\(acknowledgedAlone.count) writes sent after the detach were acknowledged: \(acknowledgedAlone.prefix(3).map(\.key))")
        let refusedCount = writers.all.filter { $0.outcome == .refused }.count
        #expect(refusedCount > 0, "no write was refused while the primary was alone")
        let lost = try writers.lostAcknowledged(on: b)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes lost on the promoted backup: \(lost.prefix(5).map(\.key))\n\(bed.logs)")
        #expect(try writers.contradictions(on: b).isEmpty)
        #expect(try b.exchange(RawRequest.get("/v1/kv/while-alone")).status == 404)

        // The old primary (still a primary, refusing writes) rejoins as a backup of the new one.
        a.killAndWait()
        let rejoined = try bed.startBackup("a", in: bed.network.a, of: bed.network.b.replicationAddress,
                                           ["-repl-heartbeat-timeout", "0"], create: false)
        #expect(waitUntilIdentical(b, rejoined), "the old primary never came into sync with the new one\n\(bed.logs)")
        #expect(try writers.contradictions(on: rejoined).isEmpty)
        #expect(try differences(b, rejoined, keys: writers.all.map(\.key) + ["while-alone"]).isEmpty)
        report("partition, required: \(writers.acknowledgedCount) acknowledged, \(lost.count) lost, \(refusedCount) refused, "
            + "detached after \((alone - partitioned).secondsText), promoted after \(promotedAfter.secondsText)")
    }

    // MARK: 2. A partition with -repl-sync available

    /// The same partition with `-repl-sync available` (the default): the primary goes on alone
    /// after detaching the backup, and the backup promotes itself: two primaries. When the old
    /// one rejoins the new one, what it acknowledged alone is discarded, as docs/OPERATIONS.md
    /// says ("a failover in that window loses those writes"). Checked: every write acknowledged
    /// before the partition is on the new primary; only writes acknowledged after it began are
    /// lost; the two servers end identical. The count lost is printed.
    @Test func partitionWithSyncAvailableLosesOnlyTheWritesOfTheWindow() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let a = try bed.startPrimary("a", in: bed.network.a, ["-repl-ack-timeout", "1s"])
        let b = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, ["-repl-heartbeat-timeout", "2s"])
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        let writers = RecordingWriters(prefix: "available")
        writers.start(port: a.port)
        defer { writers.stop() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= 200 }, "the writers stalled\n\(bed.logs)")
        let before = try a.replicationFigures()
        #expect(before.inSync && before.detaches == 0, "\(before)")

        try bed.network.partition()
        let partitioned = ContinuousClock.now
        #expect(a.waitForFigures { !$0.inSync }.holds, "the primary never detached its partitioned backup\n\(bed.logs)")
        let detachedAfter = ContinuousClock.now - partitioned
        #expect(Poll.until(timeout: .seconds(20)) { (try? b.roleName()) == "primary" }, "the backup never promoted itself\n\(bed.logs)")
        let promotedAfter = ContinuousClock.now - partitioned
        let ackedBeforeHeal = writers.acknowledgedCount
        try bed.network.heal()
        // The old primary still takes writes (two primaries) until it is stopped and rejoins.
        a.killAndWait()
        let ended = ContinuousClock.now
        writers.stop()
        #expect(ackedBeforeHeal > 0)

        let lost = try writers.lostAcknowledged(on: b)
        let lostBeforePartition = lost.filter { $0.answered < partitioned }
        #expect(lostBeforePartition.isEmpty, "\(lostBeforePartition.count) writes acknowledged before the partition were lost: \(lostBeforePartition.prefix(5).map(\.key))\n\(bed.logs)")
        let window = writers.all.filter { $0.answered >= partitioned && $0.outcome == .acknowledged }
        #expect(!lost.isEmpty, "the primary acknowledged writes alone, yet none was lost: the window the docs admit is not where they say")

        let rejoined = try bed.startBackup("a", in: bed.network.a, of: bed.network.b.replicationAddress,
                                           ["-repl-heartbeat-timeout", "0"], create: false)
        #expect(waitUntilIdentical(b, rejoined), "the old primary never came into sync with the new one\n\(bed.logs)")
        #expect(rejoined.log.contains("after a snapshot"), "the old primary's writes of the window were not discarded by a resync\n\(rejoined.log)")
        #expect(try differences(b, rejoined, keys: writers.all.map(\.key)).isEmpty)
        report("partition, available: \(writers.acknowledgedCount) acknowledged, \(lost.count) lost "
            + "(\(window.count) acknowledged after the partition began, over \((ended - partitioned).secondsText)), "
            + "detached after \(detachedAfter.secondsText), promoted after \(promotedAfter.secondsText)")
    }

    // MARK: 3. A flaky link

    /// 25 % of the packets lost each way and 20–100 ms of delay each way on the replication link
    /// for 30 s while writers PUT: nothing acknowledged is lost, and once the link is clean again
    /// the backup comes back in sync, both logs end at the same position and the two hold the same
    /// keys and values, and the backup has not promoted itself. In the suite the backup runs with
    /// `-repl-heartbeat-timeout 0` (no self-promotion), so that what this test asserts does not
    /// depend on luck: with self-promotion and `available`, whether a lossy link ever leaves the
    /// backup without a frame for the whole timeout is a probability (about one run in six with
    /// 10 s), the split brain docs/OPERATIONS.md §14 "Network faults" admits;
    /// `NETWORK_FAULTS_FLAKY_HEARTBEAT_TIMEOUT=10s` runs the test so, to measure it.
    @Test func flakyLinkLosesNothingAndTheBackupComesBackInSync() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let a = try bed.startPrimary("a", in: bed.network.a, ["-repl-heartbeat-interval", "200ms"])
        let relay = try bed.network.b.relay(to: NamespacePair.addressA, port: 9090)
        let heartbeatTimeout = ProcessInfo.processInfo.environment["NETWORK_FAULTS_FLAKY_HEARTBEAT_TIMEOUT"] ?? "0"
        let b = try bed.startBackup("b", in: bed.network.b, of: "127.0.0.1:\(relay.port)", ["-repl-heartbeat-timeout", heartbeatTimeout])
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        let writers = RecordingWriters(prefix: "flaky")
        writers.start(port: a.port)
        defer { writers.stop() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= 100 }, "the writers stalled\n\(bed.logs)")
        try bed.network.loseRandomly(percent: 25)
        relay.setDelay(milliseconds: 20...100)
        let faultStart = writers.acknowledgedCount
        let faultBegan = ContinuousClock.now
        Poll.pause(.seconds(30))  // the fault's duration is what this test is about
        let duringFault = writers.acknowledgedCount - faultStart
        let faultEnded = ContinuousClock.now
        try bed.network.heal()
        relay.setDelay(milliseconds: nil)
        let healed = ContinuousClock.now
        let inSync = a.waitForFigures(timeout: .seconds(60)) { $0.connected && $0.inSync }
        let resyncedAfter = ContinuousClock.now - healed
        #expect(inSync.holds, "the backup never came back in sync: \(inSync.last.map(\.description) ?? "-")\n\(bed.logs)")
        writers.stop()

        #expect(waitUntilIdentical(a, b), "\(bed.logs)")
        #expect(try writers.contradictions(on: a).isEmpty)
        let lost = try writers.lostAcknowledged(on: b)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes missing on the backup: \(lost.prefix(5).map(\.key))")
        #expect(try differences(a, b, keys: writers.all.map(\.key)).isEmpty)
        let backupFigures = try b.replicationFigures()
        #expect(backupFigures.role == "backup" && backupFigures.promotions == 0, "the backup promoted itself on a flaky link: \(backupFigures)\n\(bed.logs)")
        let primaryFigures = try a.replicationFigures()
        let latencies = writers.all.filter { $0.outcome == .acknowledged && $0.sent >= faultBegan && $0.answered <= faultEnded }
            .map { $0.answered - $0.sent }.sorted()
        let median = latencies.isEmpty ? "-" : latencies[latencies.count / 2].secondsText
        report("flaky link: \(writers.acknowledgedCount) acknowledged (\(duringFault) during the 30 s of faults, median PUT \(median)), 0 lost, "
            + "\(primaryFigures.detaches) detaches, \(relay.acceptedConnections) replication connections, "
            + "in sync \(resyncedAfter.secondsText) after the link was clean")
    }

    // MARK: 4. kill -9 of the primary during a checkpoint

    /// The primary (`-repl-sync required`) holds about 25 MB; POST /v1/checkpoint starts a
    /// checkpoint and the primary is killed with SIGKILL while its checkpoint.N.tmp is being
    /// written, writers PUTting all along. The backup promotes itself and holds every acknowledged
    /// write; the old primary's directory (with its unfinished checkpoint) rejoins as a backup and
    /// ends identical.
    @Test func primaryKilledDuringACheckpointLosesNoAcknowledgedWrite() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let dataA = bed.servers.directory("a")
        let a = try bed.startPrimary("a", in: bed.network.a, ["-repl-sync", "required", "-disable-background-checkpoint"])
        let b = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, ["-repl-heartbeat-timeout", "2s"])
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        // About 25 MB: 200 values of 128 KiB, each different (one pattern, its first bytes the
        // number: built once, a debug build is slow at making bytes one by one).
        let pattern = (0..<(128 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        func bulkValue(_ n: Int) -> [UInt8] { Array("\(n):".utf8) + pattern }
        let bulk = try RawConnection(port: a.port)
        for n in 0..<200 {
            let value = bulkValue(n)
            let response = try bulk.exchange(RawRequest.put("/v1/kv/bulk-\(n)", value: value), timeout: .seconds(30))
            #expect(response.status == 200, "bulk-\(n): \(response)")
        }
        let writers = RecordingWriters(prefix: "checkpointing")
        writers.start(port: a.port)
        defer { writers.stop() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= 100 }, "the writers stalled\n\(bed.logs)")

        let checkpointPort = a.port
        Thread { _ = try? RawConnection(port: checkpointPort).exchange(RawRequest.make("POST", "/v1/checkpoint"), timeout: .seconds(60)) }.start()
        let inCheckpoint = Poll.until(timeout: .seconds(30)) {
            ((try? FileManager.default.contentsOfDirectory(atPath: dataA)) ?? []).contains { $0.hasPrefix("checkpoint.") && $0.hasSuffix(".tmp") }
        }
        a.killAndWait()
        let killed = ContinuousClock.now
        writers.stop()
        #expect(inCheckpoint, "no checkpoint.N.tmp appeared in the primary's directory\n\(bed.logs)")
        let leftover = ((try? FileManager.default.contentsOfDirectory(atPath: dataA)) ?? []).filter { $0.hasSuffix(".tmp") }
        #expect(!leftover.isEmpty, "the checkpoint finished before the kill: this test did not kill during it")

        #expect(Poll.until(timeout: .seconds(20)) { (try? b.roleName()) == "primary" }, "the backup never promoted itself\n\(bed.logs)")
        let promotedAfter = ContinuousClock.now - killed
        let lost = try writers.lostAcknowledged(on: b)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes lost on the promoted backup: \(lost.prefix(5).map(\.key))\n\(bed.logs)")
        #expect(try writers.contradictions(on: b).isEmpty)
        let reader = try RawConnection(port: b.port)
        let wrongBulk = try [0, 99, 199].filter { n in
            let value = bulkValue(n)
            return base64Value(of: try reader.exchange(RawRequest.get("/v1/kv/bulk-\(n)"))) != base64(value)
        }
        #expect(wrongBulk.isEmpty, "bulk values wrong on the promoted backup: \(wrongBulk.prefix(5))")

        let rejoined = try bed.startBackup("a", in: bed.network.a, of: bed.network.b.replicationAddress,
                                           ["-repl-heartbeat-timeout", "0"], create: false)
        #expect(waitUntilIdentical(b, rejoined), "the old primary never came into sync with the new one\n\(bed.logs)")
        #expect(try differences(b, rejoined, keys: writers.all.map(\.key) + [0, 99, 199].map { "bulk-\($0)" }).isEmpty)
        report("kill -9 during a checkpoint: \(writers.acknowledgedCount) acknowledged, \(lost.count) lost, "
            + "promoted \(promotedAfter.secondsText) after the kill, \(leftover) left behind")
    }

    // MARK: 5. The backup killed and restarted five times

    /// While writers PUT on the primary, the backup is killed with SIGKILL and restarted on its
    /// directory five times, each time once it is back in sync: nothing acknowledged is lost, and
    /// after the last restart it is in sync and identical.
    @Test func backupKilledAndRestartedFiveTimesLosesNothing() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let a = try bed.startPrimary("a", in: bed.network.a)
        var b = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress)
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        let writers = RecordingWriters(prefix: "restarts")
        writers.start(port: a.port)
        defer { writers.stop() }
        var resyncTimes: [Duration] = []
        for round in 1...5 {
            let target = writers.acknowledgedCount + 100
            #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= target }, "round \(round): the writers stalled\n\(bed.logs)")
            b.killAndWait()
            #expect(a.waitForFigures { !$0.connected }.holds, "round \(round): the primary never noticed\n\(bed.logs)")
            let alone = writers.acknowledgedCount + 50
            #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= alone }, "round \(round): the primary stopped taking writes")
            let restarted = ContinuousClock.now
            b = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, create: false)
            let inSync = a.waitForFigures(timeout: .seconds(60)) { $0.connected && $0.inSync }
            #expect(inSync.holds, "round \(round): the backup never came back in sync: \(inSync.last.map(\.description) ?? "-")\n\(bed.logs)")
            resyncTimes.append(ContinuousClock.now - restarted)
        }
        writers.stop()
        #expect(waitUntilIdentical(a, b), "\(bed.logs)")
        let lost = try writers.lostAcknowledged(on: b)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes missing on the backup: \(lost.prefix(5).map(\.key))")
        #expect(try writers.contradictions(on: a).isEmpty)
        #expect(try differences(a, b, keys: writers.all.map(\.key)).isEmpty)
        let sorted = resyncTimes.sorted()
        report("backup killed 5 times: \(writers.acknowledgedCount) acknowledged, 0 lost, "
            + "restart to in sync: median \(sorted[2].secondsText) (\(sorted.map(\.secondsText).joined(separator: ", ")))")
    }

    // MARK: 6. A double failover A → B → A

    /// A is the primary (`-repl-sync required`), B its backup (promoted only by an operator:
    /// heartbeat timeout 0). A is killed, B promoted (POST /v1/promote, epoch 1), A restarted as
    /// B's backup; then B is killed, A promoted (epoch 2), B restarted as A's backup; writers PUT
    /// in each phase. Every acknowledged write of the three phases is on both, and they are
    /// identical.
    @Test func doubleFailoverLosesNothing() throws {
        let bed = try NetworkFaultBed()
        defer { bed.tearDown() }
        let required = ["-repl-sync", "required", "-repl-heartbeat-timeout", "0"]
        let a1 = try bed.startPrimary("a", in: bed.network.a, required)
        let b1 = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, required)
        #expect(a1.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        var phases: [RecordingWriters] = []

        func phase(_ name: String, on primary: ServerProcess) {
            let writers = RecordingWriters(prefix: name)
            phases.append(writers)
            writers.start(port: primary.port)
            #expect(Poll.until(timeout: .seconds(30)) { writers.acknowledgedCount >= 150 }, "\(name): the writers stalled\n\(bed.logs)")
        }
        func promote(_ server: ServerProcess, epoch: Int) throws {
            let promotion = try server.exchange(RawRequest.make("POST", "/v1/promote"))
            #expect(promotion.status == 200 && promotion.text == "{\"role\":\"primary\",\"epoch\":\(epoch)}\n", "\(promotion)")
        }

        phase("first", on: a1)
        a1.killAndWait()
        phases.last!.stop()
        try promote(b1, epoch: 1)
        let a2 = try bed.startBackup("a", in: bed.network.a, of: bed.network.b.replicationAddress, required, create: false)
        #expect(b1.waitForFigures { $0.connected && $0.inSync }.holds, "A never followed B\n\(bed.logs)")

        phase("second", on: b1)
        b1.killAndWait()
        phases.last!.stop()
        try promote(a2, epoch: 2)
        let b2 = try bed.startBackup("b", in: bed.network.b, of: bed.network.a.replicationAddress, required, create: false)
        #expect(a2.waitForFigures { $0.connected && $0.inSync }.holds, "B never followed A\n\(bed.logs)")

        phase("third", on: a2)
        phases.last!.stop()
        #expect(waitUntilIdentical(a2, b2), "\(bed.logs)")
        var acknowledged = 0
        var lost = 0
        for writers in phases {
            acknowledged += writers.acknowledgedCount
            for server in [a2, b2] {
                let missing = try writers.lostAcknowledged(on: server)
                lost += missing.count
                #expect(missing.isEmpty, "\(writers.prefix): \(missing.count) acknowledged writes lost: \(missing.prefix(5).map(\.key))\n\(bed.logs)")
                #expect(try writers.contradictions(on: server).isEmpty, "\(writers.prefix)")
            }
        }
        #expect(try differences(a2, b2, keys: phases.flatMap { $0.all.map(\.key) }).isEmpty)
        #expect(try a2.replicationFigures().epoch == 2 && b2.replicationFigures().epoch == 2)
        report("double failover A→B→A: \(acknowledged) acknowledged, \(lost) lost")
    }
}
