import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// -repl-token-file between two small_db_server processes: the same token on both lets the backup
// follow; different tokens are refused, logged on both sides, and change nothing; without the
// flag the primary logs that its port is open.
@Suite("Replication authentication between processes", .serialized)
struct ReplicationProcessAuthTests {
    private func tokenFile(_ bed: ReplicationBed, _ name: String, _ token: String) throws -> String {
        let path = bed.directory(name)
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        return path
    }

    @Test func theSameTokenOnBothSidesReplicates() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let token = try tokenFile(bed, "token", "a replication token of some length")
        let primary = try bed.start("primary", data: bed.directory("p"), ["-repl-token-file", token])
        let backup = try bed.startBackup("backup", data: bed.directory("b"), of: try primary.replicationPort(), ["-repl-token-file", token])
        #expect(primary.waitForFigures { $0.connected && $0.inSync }.holds, "\(bed.logs)")
        #expect(try primary.put("k", "through the token").status == 200)
        #expect(backup.holds("k", "through the token"), "\(bed.logs)")
        #expect(primary.log.contains("backups must prove the -repl-token-file token"), "\(primary.log)")
        #expect(!primary.log.contains("WITHOUT authentication"))
    }

    @Test func differentTokensAreRefusedOnBothSidesAndChangeNothing() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let mine = try tokenFile(bed, "mine", "the primary's token, long enough")
        let theirs = try tokenFile(bed, "theirs", "the backup's token, long enough!")
        let primary = try bed.start("primary", data: bed.directory("p"), ["-repl-token-file", mine])
        let backup = try bed.startBackup("backup", data: bed.directory("b"), of: try primary.replicationPort(), ["-repl-token-file", theirs])
        #expect(Poll.until(timeout: .seconds(20)) { primary.log.contains("it refused this primary's proof") }, "\(bed.logs)")
        #expect(Poll.until(timeout: .seconds(20)) { backup.log.contains("the primary's proof does not match -repl-token-file") }, "\(bed.logs)")
        #expect(try primary.put("k", "alone").status == 200)
        let figures = try primary.replicationFigures()
        #expect(!figures.connected && figures.role == "primary", "\(figures)")
        #expect(!backup.holds("k", "alone"))
    }

    @Test func withoutATokenThePortIsLoggedAsOpenAndABadTokenFileStopsTheServer() throws {
        let bed = try ReplicationBed()
        defer { bed.tearDown() }
        let primary = try bed.start("primary", data: bed.directory("p"))
        _ = try primary.replicationPort()
        #expect(primary.log.contains("WITHOUT authentication (no -repl-token-file)"), "\(primary.log)")
        let short = try tokenFile(bed, "short", "too short")
        #expect(throws: (any Error).self) {
            _ = try bed.start("refused", data: bed.directory("q"), ["-repl-token-file", short])
        }
    }
}
