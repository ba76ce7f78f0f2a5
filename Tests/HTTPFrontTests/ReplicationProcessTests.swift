import Foundation
import Testing
import WireProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Primary/backup replication between real small_db_server processes on loopback (issue 4):
/// a backup that bootstraps itself from an empty directory, the seed's copy-the-directory flow
/// (also from a Go-written directory), kill -9 of the primary under concurrent writers, a backup
/// killed and restarted mid-stream, checkpoints mirrored while streaming, failover and rejoin,
/// a stale-epoch primary fenced, and garbage on the replication port.
///
/// Every port is kernel-chosen (`-addr` and `-repl-addr` 127.0.0.1:0; a primary's replication
/// port is read from its log) except the one a backup must listen on once promoted, which the
/// failover test has to know in advance. Every wait polls a condition until a deadline. Every
/// server runs with `-repl-ack-timeout 10s` (see `ReplicationBed.start`), so that a loaded
/// machine does not detach a backup and let the primary acknowledge writes alone.
@Suite("Replication between small_db_server processes", .timeLimit(.minutes(2 * Sanitizer.slowdown)))
struct ReplicationProcessTests {
    static let writesDisabled = "{\"error\":\"writes are disabled on backup\"}\n"
    static let ok = "{\"ok\":true}\n"

    // MARK: 1. No copy needed

    /// A backup started on an empty directory catches up with a primary that already holds data,
    /// then follows it: each PUT the primary answers 200 is readable on the backup at once (the
    /// output rule). The backup refuses PUT, DELETE and POST /v1/checkpoint with the Go server's
    /// 403 and says it is a backup.
    @Test func backupOnAnEmptyDirectoryCatchesUpThenFollowsUnderTheOutputRule() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primary = try bed.start("primary", data: bed.directory("primary"))
        let before = KeySeries(prefix: "before", count: 200)
        try before.write(to: primary)

        let backup = try bed.startBackup("backup", data: bed.directory("backup"), of: try primary.replicationPort())
        let caughtUp = Poll.until(timeout: .seconds(30)) { backup.holds(before.key(before.count), before.value(before.count)) }
        #expect(caughtUp, "the backup never got the primary's data\n\(bed.logs)")
        let missing = try before.missing(on: backup)
        #expect(missing.isEmpty, "\(missing.count) keys missing on the backup: \(missing.prefix(5))")

        let attached = primary.waitForFigures { $0.connected && $0.inSync }
        #expect(attached.holds, "the primary never had its backup in sync: \(attached.last.map(\.description) ?? "no figures")\n\(bed.logs)")
        // The output rule: the backup holds each write by the time the primary acknowledges it.
        let writer = try RawConnection(port: primary.port)
        let reader = try RawConnection(port: backup.port)
        for n in 1...50 {
            let key = "after-\(n)"
            #expect(try writer.exchange(RawRequest.put("/v1/kv/" + key, text: "value \(n)")).status == 200)
            let read = try reader.exchange(RawRequest.get("/v1/kv/" + key))
            #expect(read.status == 200 && read.text == getBody(jsonKey: "\"\(key)\"", value: Array("value \(n)".utf8)),
                    "\(key) not on the backup right after the primary's 200: \(read)")
        }
        #expect(try writer.exchange(RawRequest.make("DELETE", "/v1/kv/after-1")).status == 200)
        #expect(try reader.exchange(RawRequest.get("/v1/kv/after-1")).status == 404, "a DELETE did not replicate at once")

        // The backup is read-only.
        for request in [
            RawRequest.put("/v1/kv/before-1", text: "overwritten on the backup"),
            RawRequest.put("/v1/kv/new-on-backup", text: "x"),
            RawRequest.make("DELETE", "/v1/kv/before-2"),
            RawRequest.make("POST", "/v1/checkpoint"),
        ] {
            let refused = try reader.exchange(request)
            #expect(refused.status == 403, "\(String(decoding: request.prefix(40), as: UTF8.self)): \(refused)")
            #expect(refused.text == ReplicationProcessTests.writesDisabled)
        }
        #expect(backup.holds(before.key(1), before.value(1)), "a refused PUT changed the backup")
        #expect(backup.holds(before.key(2), before.value(2)), "a refused DELETE changed the backup")
        #expect(try reader.exchange(RawRequest.get("/v1/kv/new-on-backup")).status == 404)
        #expect(try reader.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"backup\",\"writable\":false}\n")
        #expect(try writer.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"primary\",\"writable\":true}\n")
        let figures = try backup.replicationFigures()
        #expect(figures.role == "backup" && figures.connected && figures.epoch == 0 && figures.promotions == 0, "\(figures)")
    }

    // MARK: 2. The seed's flow: copy the primary's directory

    /// Stop the primary (SIGINT), copy its directory, restart it, start a backup on the copy: the
    /// backup streams from where the copy ends, without a snapshot, and holds everything.
    @Test func backupOnACopyOfThePrimarysDirectoryStreamsWithoutASnapshot() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let data = bed.directory("primary")
        let first = try bed.start("primary", data: data, ["-checkpoint-updates", "150"])
        let series = KeySeries(prefix: "seed", count: 400)
        try series.write(to: first)  // crosses two checkpoints: the copy has a checkpoint and a log
        first.signal(SIGINT)
        #expect(first.waitForExit(timeout: .seconds(10)) == .exited(0), "\(first.log)")
        try DataDirectory.copy(data, to: bed.directory("backup"))

        let primary = try bed.start("primary", data: data, create: false)
        let backup = try bed.startBackup("backup", data: bed.directory("backup"), of: try primary.replicationPort(), create: false)
        try expectStreamsWithoutSnapshot(primary: primary, backup: backup, bed: bed)
        let missing = try series.missing(on: backup)
        #expect(missing.isEmpty, "\(missing.count) keys missing on the backup: \(missing.prefix(5))")
        #expect(try primary.put("later", "after the backup attached").status == 200)
        #expect(backup.holds("later", "after the backup attached"))
    }

    /// The same with a directory the Go small-db wrote (two copies of the `basic` fixture): the
    /// backup streams without a snapshot and holds exactly the fixture's keys and values.
    @Test func backupOnACopyOfAGoWrittenDirectoryStreamsWithoutASnapshot() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let fixture = DataDirectory.goFixtures + "/basic"
        let expected = try DataDirectory.goFixtureContents("basic")
        try DataDirectory.copy(fixture, to: bed.directory("primary"))
        try DataDirectory.copy(fixture, to: bed.directory("backup"))

        let primary = try bed.start("primary", data: bed.directory("primary"), create: false)
        let backup = try bed.startBackup("backup", data: bed.directory("backup"), of: try primary.replicationPort(), create: false)
        try expectStreamsWithoutSnapshot(primary: primary, backup: backup, bed: bed)

        #expect(expected.count == 323)
        let reader = try RawConnection(port: backup.port)
        var wrong: [String] = []
        for (key, value) in expected {
            let bytes = try #require(Data(base64Encoded: key))
            let response = try reader.exchange(RawRequest.get("/v1/kv/" + percentEncodeAll(Array(bytes))))
            if base64Value(of: response) != value { wrong.append("\(key): \(response.status) \(response.text.prefix(80))") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(expected.count) keys wrong on the backup: \(wrong.prefix(5))")
        #expect(try primary.put("later", "after the backup attached").status == 200)
        #expect(backup.holds("later", "after the backup attached"))
    }

    /// Waits until the backup is attached and in sync; checks that no snapshot was sent or installed.
    private func expectStreamsWithoutSnapshot(primary: ServerProcess, backup: ServerProcess, bed: ReplicationBed) throws {
        let attached = primary.waitForFigures { $0.connected && $0.inSync }
        #expect(attached.holds, "the backup never came into sync: \(attached.last.map(\.description) ?? "no figures")\n\(bed.logs)")
        // (The primary may mark it in sync before the backup has recorded the welcome.)
        let following = backup.waitForFigures { $0.connected }
        #expect(following.holds, "the backup never said it is connected: \(following.last.map(\.description) ?? "-")\n\(bed.logs)")
        let backupFigures = try backup.replicationFigures()
        #expect(backupFigures.resyncs == 0 && backupFigures.epoch == 0 && backupFigures.role == "backup", "\(backupFigures)\n\(bed.logs)")
        #expect(try primary.replicationFigures().resyncs == 0)
        #expect(primary.log.contains("attached, streaming from"), "\(primary.log)")
        #expect(!backup.log.contains("after a snapshot") && !backup.log.contains("installed the primary's snapshot"), "\(backup.log)")
    }

    // MARK: 3. kill -9 of the primary

    /// Eight writers PUT on the primary; the primary is killed with SIGKILL. The backup (heartbeat
    /// timeout 2 s, primary heartbeats every 100 ms) is a primary within the timeout + 1 s of the
    /// kill, holds every PUT the primary answered 200, and takes writes.
    @Test func backupPromotesWithinTheTimeoutAfterKill9AndHoldsEveryAcknowledgedWrite() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primary = try bed.start("primary", data: bed.directory("primary"), ["-repl-heartbeat-interval", "100ms"])
        let backup = try bed.startBackup("backup", data: bed.directory("backup"), of: try primary.replicationPort(),
                                         ["-repl-heartbeat-timeout", "2s"])
        let attached = primary.waitForFigures { $0.connected && $0.inSync }
        #expect(attached.holds, "\(attached.last.map(\.description) ?? "no figures")\n\(bed.logs)")

        let writers = ConcurrentWriters(writers: 8, prefix: "failover")
        writers.start(port: primary.port)
        defer { writers.stop(); _ = writers.join() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= 300 }, "the writers stalled\n\(bed.logs)")
        let beforeKill = try primary.replicationFigures()
        #expect(beforeKill.inSync && beforeKill.detaches == 0, "the backup was not in sync before the kill: \(beforeKill)")

        let killed = ContinuousClock.now
        primary.killAndWait()
        var promotedAfter: Duration?
        let promoted = Poll.until(timeout: .seconds(10)) {
            guard (try? backup.roleName()) == "primary" else { return false }
            promotedAfter = ContinuousClock.now - killed
            return true
        }
        #expect(promoted, "the backup never promoted itself\n\(backup.log)")
        if let promotedAfter {
            #expect(promotedAfter <= .seconds(3), "promoted \(promotedAfter) after the kill (timeout 2 s + 1 s)")
        }
        #expect(primary.exitStatus == .signaled(SIGKILL))
        #expect(writers.join(), "writers still running after the kill")
        #expect(writers.unexpectedAnswers.isEmpty, "\(writers.unexpectedAnswers)")

        let mismatches = try writers.verify(port: backup.port)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches on the promoted backup: \(mismatches.prefix(5))")
        let figures = try backup.replicationFigures()
        #expect(figures.role == "primary" && figures.epoch == 1 && figures.promotions == 1, "\(figures)")
        #expect(backup.log.contains("replication: promoted to primary, epoch 1"), "\(backup.log)")
        _ = try backup.replicationPort()  // promoted: it listens for backups of its own
        #expect(try backup.put("after-failover", "accepted").status == 200)
        #expect(backup.holds("after-failover", "accepted"))
    }

    // MARK: 4. A backup killed and restarted

    /// The backup is killed with SIGKILL while writers PUT on the primary, and restarted on its
    /// directory while they go on: it resumes from where its log ends (no snapshot), catches up
    /// and holds every acknowledged write.
    @Test func backupKilledAndRestartedMidStreamResumesWithoutLoss() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primary = try bed.start("primary", data: bed.directory("primary"))
        let replicationPort = try primary.replicationPort()
        let backupData = bed.directory("backup")
        let backup = try bed.startBackup("backup", data: backupData, of: replicationPort)
        #expect(primary.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")

        let writers = ConcurrentWriters(writers: 6, prefix: "restart")
        writers.start(port: primary.port)
        defer { writers.stop(); _ = writers.join() }
        #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= 200 }, "the writers stalled\n\(bed.logs)")
        backup.killAndWait()
        #expect(backup.exitStatus == .signaled(SIGKILL))
        // The primary notices, detaches it and goes on alone.
        #expect(primary.waitForFigures { !$0.connected }.holds, "the primary never noticed the backup's death")
        let alone = writers.totalAcknowledged
        #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= alone + 100 }, "the primary stopped taking writes")

        let restarted = try bed.startBackup("backup", data: backupData, of: replicationPort, create: false)
        let attached = primary.waitForFigures { $0.connected && $0.inSync }
        #expect(attached.holds, "the restarted backup never came into sync: \(attached.last.map(\.description) ?? "-")\n\(bed.logs)")
        let resumed = writers.totalAcknowledged
        #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= resumed + 200 }, "the writers stalled")
        writers.stop()
        #expect(writers.join())
        #expect(writers.unexpectedAnswers.isEmpty, "\(writers.unexpectedAnswers)")

        #expect(waitUntilCaughtUp(primary, restarted), "\(bed.logs)")
        let mismatches = try writers.verify(port: restarted.port)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches on the restarted backup: \(mismatches.prefix(5))")
        let figures = try restarted.replicationFigures()
        #expect(figures.resyncs == 0 && figures.role == "backup", "it did not resume from its position: \(figures)")
        #expect(try primary.replicationFigures().resyncs == 0)
        #expect(!restarted.log.contains("after a snapshot"), "\(restarted.log)")
    }

    // MARK: 5. Checkpoints while streaming

    /// The primary checkpoints four times (POST /v1/checkpoint) while writers PUT: the backup keeps
    /// up, and its directory ends with the same checkpoint.N and logfile.N files as the primary's,
    /// the live segment byte for byte the same.
    @Test func checkpointsOnThePrimaryAreMirroredOnTheBackup() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primaryData = bed.directory("primary")
        let backupData = bed.directory("backup")
        let primary = try bed.start("primary", data: primaryData)
        let backup = try bed.startBackup("backup", data: backupData, of: try primary.replicationPort())
        #expect(primary.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        let startGeneration = try primary.replicationFigures().logGeneration

        let writers = ConcurrentWriters(writers: 4, prefix: "checkpointing")
        writers.start(port: primary.port)
        defer { writers.stop(); _ = writers.join() }
        let control = try RawConnection(port: primary.port)
        for round in 1...4 {
            let target = writers.totalAcknowledged + 100
            #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= target }, "round \(round): the writers stalled")
            let checkpoint = try control.exchange(RawRequest.make("POST", "/v1/checkpoint"), timeout: .seconds(30))
            #expect(checkpoint.status == 200 && checkpoint.text == ReplicationProcessTests.ok, "round \(round): \(checkpoint)")
        }
        writers.stop()
        #expect(writers.join())
        #expect(writers.unexpectedAnswers.isEmpty, "\(writers.unexpectedAnswers)")

        #expect(waitUntilCaughtUp(primary, backup), "\(bed.logs)")
        let mismatches = try writers.verify(port: backup.port)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches on the backup: \(mismatches.prefix(5))")
        let figures = try primary.replicationFigures()
        #expect(figures.logGeneration >= startGeneration + 4, "four checkpoints, yet \(startGeneration) → \(figures.logGeneration)")
        #expect(figures.inSync, "\(figures)")

        // The backup's checkpoints run in the background: poll.
        let primaryFiles = DataDirectory.generationFiles(primaryData)
        #expect(primaryFiles.contains("checkpoint.\(figures.logGeneration)") && primaryFiles.contains("logfile.\(figures.logGeneration)"),
                "\(primaryFiles)")
        var backupFiles: [String] = []
        let mirrored = Poll.until(timeout: .seconds(20)) {
            backupFiles = DataDirectory.generationFiles(backupData)
            return backupFiles == primaryFiles
        }
        #expect(mirrored, "primary \(primaryFiles), backup \(backupFiles)\n\(bed.logs)")
        #expect(try backup.replicationFigures().logGeneration == figures.logGeneration)
        let live = "logfile.\(figures.logGeneration)"
        let primaryLog = try Data(contentsOf: URL(fileURLWithPath: primaryData + "/" + live))
        let backupLog = try Data(contentsOf: URL(fileURLWithPath: backupData + "/" + live))
        #expect(primaryLog == backupLog, "\(live) differs: \(primaryLog.count) bytes on the primary, \(backupLog.count) on the backup")
        #expect(!bed.logs.contains("mirrored checkpoint"), "\(bed.logs)")
    }

    // MARK: 6. Failover and rejoin

    /// A primary A and its backup B. B is killed; A takes a write alone (B never gets it); A is
    /// killed. B is restarted and promoted (POST /v1/promote: epoch 1, its own replication
    /// listener on the -repl-addr it was given) and takes writes. A restarted as a backup of B
    /// is resynced from a snapshot (its log went past the point where epoch 0 ended), drops the
    /// write B never got, and then holds B's data and follows it, at epoch 1.
    @Test func oldPrimaryRejoinsAsBackupOfTheNewOneAndResyncs() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let dataA = bed.directory("a")
        let dataB = bed.directory("b")
        let replicationPortB = try RawConnection.freePort()
        let a = try bed.start("a", data: dataA)
        let replicationPortA = try a.replicationPort()
        let b = try bed.startBackup("b", data: dataB, of: replicationPortA, ["-repl-addr", "127.0.0.1:\(replicationPortB)"])
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        let before = KeySeries(prefix: "before", count: 100)
        try before.write(to: a)  // in sync: each one is on B before A answers

        b.killAndWait()
        #expect(a.waitForFigures { !$0.connected }.holds, "A never noticed B's death")
        #expect(try a.put("lost", "only on the old primary").status == 200)
        a.killAndWait()

        // B again, as a backup of a primary that is gone (port 1: nothing listens there, whereas
        // A's old port may be anyone's by now): it never reaches it, so it waits; promote it.
        let newPrimary = try bed.startBackup("b", data: dataB, of: 1,
                                             ["-repl-addr", "127.0.0.1:\(replicationPortB)"], create: false)
        #expect(try newPrimary.roleName() == "backup")
        let promotion = try newPrimary.exchange(RawRequest.make("POST", "/v1/promote"))
        #expect(promotion.status == 200 && promotion.text == "{\"role\":\"primary\",\"epoch\":1}\n", "\(promotion)")
        #expect(try newPrimary.replicationPort() == replicationPortB, "\(newPrimary.log)")
        #expect(try newPrimary.roleName() == "primary")
        #expect(newPrimary.holds("before-100", before.value(100)))
        #expect(try newPrimary.exchange(RawRequest.get("/v1/kv/lost")).status == 404)
        let after = KeySeries(prefix: "after", count: 50)
        try after.write(to: newPrimary)

        let rejoined = try bed.startBackup("a", data: dataA, of: replicationPortB, create: false)
        // The primary marks it in sync once it has sent everything, the backup says it is
        // connected once it has installed the snapshot: wait for both.
        let attached = newPrimary.waitForFigures { $0.connected && $0.inSync }
        #expect(attached.holds, "A never came into sync with B: \(attached.last.map(\.description) ?? "-")\n\(bed.logs)")
        let following = rejoined.waitForFigures { $0.connected }
        #expect(following.holds, "A never followed B: \(following.last.map(\.description) ?? "-")\n\(bed.logs)")
        let figures = try rejoined.replicationFigures()
        #expect(figures.role == "backup" && figures.epoch == 1 && figures.resyncs == 1 && figures.connected, "\(figures)\n\(bed.logs)")
        #expect(rejoined.log.contains("after a snapshot"), "\(rejoined.log)")
        #expect(newPrimary.log.contains("needs a snapshot"), "\(newPrimary.log)")
        #expect(try before.missing(on: rejoined).isEmpty)
        #expect(try after.missing(on: rejoined).isEmpty)
        #expect(try rejoined.exchange(RawRequest.get("/v1/kv/lost")).status == 404, "A kept a write the new primary never had")
        #expect(try newPrimary.put("following", "B's").status == 200)
        #expect(rejoined.holds("following", "B's"))
        #expect(try newPrimary.replicationFigures().epoch == 1)
    }

    // MARK: 7. A stale primary is fenced

    /// After a failover (A killed, its backup B promoted to epoch 1), A's directory is started as
    /// a primary again, at epoch 0, and B (stopped, restarted as a backup) is pointed at it: A
    /// learns it was superseded and refuses writes (403); B never connects and never takes A's
    /// data.
    @Test func stalePrimaryMeetingANewerEpochStepsDownAndIsNeverFollowed() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let dataA = bed.directory("a")
        let dataB = bed.directory("b")
        let a = try bed.start("a", data: dataA)
        let b = try bed.startBackup("b", data: dataB, of: try a.replicationPort())
        #expect(a.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        let shared = KeySeries(prefix: "shared", count: 50)
        try shared.write(to: a)
        a.killAndWait()
        let promotion = try b.exchange(RawRequest.make("POST", "/v1/promote"))
        #expect(promotion.status == 200 && promotion.text == "{\"role\":\"primary\",\"epoch\":1}\n", "\(promotion)")
        #expect(try b.put("newer", "written at epoch 1").status == 200)
        b.signal(SIGINT)
        #expect(b.waitForExit(timeout: .seconds(10)) == .exited(0), "\(b.log)")

        let stale = try bed.start("a-stale", data: dataA, create: false)
        #expect(try stale.replicationFigures().epoch == 0)
        #expect(try stale.put("stale-write", "written at epoch 0").status == 200, "before it meets B it is a primary like any other")
        let newer = try bed.startBackup("b", data: dataB, of: try stale.replicationPort(), create: false)
        #expect(Poll.until(timeout: .seconds(20)) { stale.log.contains("this server was superseded and refuses writes") },
                "the stale primary never stepped down\n\(bed.logs)")
        let put = try stale.put("stale-write-2", "refused")
        #expect(put.status == 403, "\(put)")
        #expect(put.text == "{\"error\":\"this primary was superseded by a newer one (epoch 1): read-only\"}\n", "\(put)")
        let delete = try stale.exchange(RawRequest.make("DELETE", "/v1/kv/shared-1"))
        #expect(delete.status == 403, "\(delete)")
        #expect(stale.holds("shared-1", shared.value(1)))

        // B keeps trying and is refused every time; it never connects, never promotes itself.
        var everConnected: ReplicationFigures?
        let refusedAgain = Poll.until(timeout: .seconds(20)) {
            if let figures = try? newer.replicationFigures(), figures.connected || figures.role != "backup" { everConnected = figures }
            return lineCount(stale.log, containing: "replication: refused") >= 3
        }
        #expect(refusedAgain, "\(bed.logs)")
        #expect(everConnected == nil, "B followed the stale primary: \(everConnected.map(\.description) ?? "")")
        let figures = try newer.replicationFigures()
        #expect(figures.role == "backup" && !figures.connected && figures.epoch == 1 && figures.resyncs == 0, "\(figures)")
        #expect(newer.log.contains("the primary refused"), "\(newer.log)")
        #expect(newer.holds("newer", "written at epoch 1"))
        #expect(try newer.exchange(RawRequest.get("/v1/kv/stale-write")).status == 404, "B took the stale primary's write")
    }

    // MARK: 8. Garbage on the replication port

    /// What is not a replication hello (an HTTP request, random bytes, a frame with a bad checksum,
    /// a frame other than a hello, a hello of another protocol version) is dropped: the primary
    /// closes that connection within seconds and logs it, goes on serving HTTP, and a real backup
    /// attaches afterwards.
    @Test func garbageOnTheReplicationPortIsDroppedAndLogged() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primary = try bed.start("primary", data: bed.directory("primary"))
        let replicationPort = try primary.replicationPort()
        #expect(try primary.put("k", "v").status == 200)

        var random = SystemRandomNumberGenerator()
        // The first byte is no frame type: decided at the first byte, not after a frame's length.
        let randomBytes: [UInt8] = [0xEE] + (0..<4095).map { _ in UInt8.random(in: 0...255, using: &random) }
        var hello: [UInt8] = []
        ReplicationFrameEncoder.append(.hello(Hello(
            protocolVersion: ReplicationProtocol.version, epoch: 0, lineage: nil,
            position: ReplicationPosition(generation: 1, offset: 0), prefixCRC: 0)), to: &hello)
        var badChecksum = hello
        badChecksum[badChecksum.count - 1] ^= 0xFF
        var otherVersion: [UInt8] = []
        ReplicationFrameEncoder.append(.hello(Hello(
            protocolVersion: 99, epoch: 0, lineage: nil,
            position: ReplicationPosition(generation: 1, offset: 0), prefixCRC: 0)), to: &otherVersion)
        var heartbeat: [UInt8] = []
        ReplicationFrameEncoder.append(.heartbeat(epoch: 0, position: ReplicationPosition(generation: 1, offset: 0)), to: &heartbeat)
        let garbage: [(String, [UInt8])] = [
            ("an HTTP request", RawRequest.get("/v1/health")),
            ("4 KiB of random bytes", randomBytes),
            ("a hello with a bad checksum", badChecksum),
            ("a hello of protocol version 99", otherVersion),
            ("a heartbeat before any hello", heartbeat),
        ]
        for (index, (what, bytes)) in garbage.enumerated() {
            let connection = try RawConnection(port: replicationPort)
            try connection.send(bytes)
            #expect(connection.waitUntilClosedByPeer(timeout: .seconds(5)), "\(what): the primary kept the connection open")
            connection.close()
            let logged = Poll.until(timeout: .seconds(5)) {
                lineCount(primary.log, containing: "replication: dropped 127.0.0.1:") == index + 1
            }
            #expect(logged, "\(what): no log line\n\(primary.log)")
        }
        let log = primary.log
        #expect(log.contains("unknown replication frame type 71 ('G')"), "\(log)")
        #expect(log.contains("frame checksum mismatch"), "\(log)")
        #expect(log.contains("replication protocol version 99 is not supported"), "\(log)")
        #expect(log.contains("it sent heartbeat before a hello"), "\(log)")
        #expect(primary.isRunning)
        #expect(try primary.exchange(RawRequest.get("/v1/health")).status == 200)
        #expect(try primary.put("k2", "v2").status == 200)

        let backup = try bed.startBackup("backup", data: bed.directory("backup"), of: replicationPort)
        #expect(primary.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        #expect(try primary.put("k3", "v3").status == 200)
        #expect(backup.holds("k", "v") && backup.holds("k2", "v2") && backup.holds("k3", "v3"))
    }
}
