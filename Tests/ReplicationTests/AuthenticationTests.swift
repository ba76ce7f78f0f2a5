import Foundation
import Synchronization
import Testing
@testable import Replication
import StorageEngine
import WireProtocol
import StorageEngineTesting

private func v(_ text: String) -> [UInt8] { Array(text.utf8) }
private func token(_ text: String) throws -> ReplicationToken { try ReplicationToken(bytes: Array(text.utf8)) }

@Suite("Replication authentication (-repl-token-file)")
struct AuthenticationTests {
    @Test func withTheSameTokenTheBackupFollows() async throws {
        let network = InMemoryReplicationNetwork()
        let shared = try token("a token of at least sixteen bytes")
        let primary = TestNode("p", network: network) { $0.token = shared }
        let backup = TestNode("b", network: network) { $0.token = shared }
        try primary.startPrimary()
        try backup.startBackup(of: "p")
        defer { backup.stop(); primary.stop() }
        #expect(try await eventually { primary.inSyncAsPrimary })
        try await primary.database.put("k", v("1"))
        #expect(try backup.database.get("k") == v("1"))
    }

    /// Each pairing that cannot authenticate: both sides log why, nothing attaches, nothing is fenced.
    @Test(arguments: [
        ("different tokens", "token number one, long enough", "token number two, long enough",
         "refused this primary's proof", "the primary's proof does not match -repl-token-file"),
        ("no token on the backup", "token number one, long enough", nil,
         "without authenticating (is -repl-token-file missing on the backup?)", "this primary requires authentication"),
        ("no token on the primary", nil, "token number two, long enough",
         "it asked to authenticate, but this primary has no -repl-token-file", "this primary has no -repl-token-file"),
    ] as [(String, String?, String?, String, String)])
    func aMismatchIsRefusedOnBothSidesAndChangesNothing(
        _ name: String, primaryToken: String?, backupToken: String?, primarySays: String, backupSays: String
    ) async throws {
        let network = InMemoryReplicationNetwork()
        let primaryLog = LogRecorder()
        let backupLog = LogRecorder()
        let primary = TestNode("p", network: network) {
            $0.token = try? primaryToken.map(token)
            $0.log = primaryLog.log
        }
        // Its directory claims a newer epoch of the primary's lineage: were it heard, the primary
        // would step down.
        try primary.startPrimary()
        defer { primary.stop() }
        let lineage = try ReplicationStateCodec.decode(try #require(try primary.database.readReplicationMetadata())).lineage
        let backupStore = FaultInjectingStore()
        do {
            let db = try Database.open(logStore: backupStore, snapshotStore: backupStore, options: .forTests)
            try db.writeReplicationMetadata(ReplicationStateCodec.encode(ReplicationState(
                lineage: lineage, epoch: 3, history: [EpochStart(epoch: 3, start: ReplicationPosition(generation: 0, offset: 0))],
                role: .backup)))
            db.close()
        }
        let backup = TestNode("b", network: network, store: backupStore) {
            $0.token = try? backupToken.map(token)
            $0.log = backupLog.log
        }
        try backup.startBackup(of: "p")
        defer { backup.stop() }
        #expect(try await eventually { primaryLog.contains(primarySays) }, "\(name): \(primaryLog.all)")
        #expect(try await eventually { backupLog.contains(backupSays) }, "\(name): \(backupLog.all)")
        #expect(try await eventually { (backup.followerView?.sessionsEnded ?? 0) >= 2 })
        #expect(backup.followerView?.welcomed == false)
        #expect(primary.node.status.fencedBy == nil)
        #expect(primary.node.writeRefusal == nil)
        #expect(!primary.node.status.connected)
        try await primary.database.put("still", v("writable"))
    }

    /// A raw peer that knows no token: the primary's proof cannot be reflected as the backup's,
    /// a proof from one connection does not pass on another, and nothing but the proof is
    /// accepted before it.
    @Test func proofsCannotBeReflectedOrReplayedAndNothingElseComesFirst() async throws {
        let network = InMemoryReplicationNetwork()
        let primary = TestNode("p", network: network) { $0.token = try? token("the primary's secret token!") }
        try primary.startPrimary()
        defer { primary.stop() }

        func challenge() throws -> (any ReplicationConnection, nonce: [UInt8], proof: [UInt8]) {
            let connection = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
            try connection.send(.authChallenge(nonce: [UInt8](repeating: 7, count: ReplicationProtocol.nonceSize)))
            guard case .authResponse(let nonce, let proof) = try connection.receive(timeout: .seconds(5)) else {
                throw ReplicationFailure("no authResponse")
            }
            return (connection, nonce, proof)
        }
        func expectRefused(_ connection: any ReplicationConnection, _ code: Refusal.Code) throws {
            guard case .refuse(let refusal) = try connection.receive(timeout: .seconds(5)) else {
                Issue.record("not refused")
                return
            }
            #expect(refusal.code == code)
        }

        // Reflection: the primary's own proof, sent back.
        let (first, firstNonce, firstProof) = try challenge()
        defer { first.close() }
        try first.send(.authProof(firstProof))
        try expectRefused(first, .unauthenticated)
        // Replay: the same challenge again gets a fresh nonce, so an old proof does not fit.
        let (second, secondNonce, secondProof) = try challenge()
        defer { second.close() }
        #expect(secondNonce != firstNonce)
        #expect(secondProof != firstProof)
        try second.send(.authProof(firstProof))
        try expectRefused(second, .unauthenticated)
        // A hello instead of the proof (claiming a newer epoch): refused, nothing fenced.
        let (third, _, _) = try challenge()
        defer { third.close() }
        let lineage = try ReplicationStateCodec.decode(try #require(try primary.database.readReplicationMetadata())).lineage
        try third.send(.hello(Hello(
            epoch: 9, lineage: lineage, position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: 0,
            epochStart: ReplicationPosition(generation: 0, offset: 0))))
        try expectRefused(third, .protocolViolation)
        // A hello first of all.
        let fourth = try network.makeDialer(address: "p").connect(timeout: .seconds(1))
        defer { fourth.close() }
        try fourth.send(.hello(Hello(
            epoch: 9, lineage: lineage, position: ReplicationPosition(generation: 0, offset: 0), prefixCRC: 0,
            epochStart: ReplicationPosition(generation: 0, offset: 0))))
        try expectRefused(fourth, .unauthenticated)
        #expect(primary.node.status.fencedBy == nil)
        try await primary.database.put("still", v("writable"))
    }

    @Test func theProofsOfTheTwoSidesDifferAndCoverBothNonces() throws {
        let secret = try token("sixteen bytes at least")
        let a = [UInt8](repeating: 1, count: 32)
        let b = [UInt8](repeating: 2, count: 32)
        let primaryProof = ReplicationAuthentication.proof(secret, label: ReplicationAuthentication.primaryLabel, backupNonce: a, primaryNonce: b)
        #expect(primaryProof != ReplicationAuthentication.proof(secret, label: ReplicationAuthentication.backupLabel, backupNonce: a, primaryNonce: b))
        #expect(primaryProof != ReplicationAuthentication.proof(secret, label: ReplicationAuthentication.primaryLabel, backupNonce: b, primaryNonce: a))
        #expect(ReplicationAuthentication.freshNonce() != ReplicationAuthentication.freshNonce())
        #expect(ReplicationAuthentication.freshNonce().count == ReplicationProtocol.nonceSize)
        #expect(!"\(secret)".contains("sixteen"))
    }
}

@Suite("The token file")
struct ReplicationTokenFileTests {
    private func write(_ contents: String, mode: mode_t) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("repl-token-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)))
        #expect(chmod(path, mode) == 0)
        return path
    }

    @Test func oneTrailingNewlineIsTrimmedAndAPrivateFileGivesNoWarning() throws {
        for (contents, expected) in [("0123456789abcdefXYZ\n", "0123456789abcdefXYZ"), ("0123456789abcdefXYZ\r\n", "0123456789abcdefXYZ"),
                                     ("0123456789abcdef ", "0123456789abcdef ")] {
            let path = try write(contents, mode: 0o600)
            defer { unlink(path) }
            let (loaded, warning) = try ReplicationToken.load(path: path)
            #expect(loaded.bytes == Array(expected.utf8))
            #expect(warning == nil)
        }
    }

    @Test func aFileOthersCanReadIsWarnedAbout() throws {
        let path = try write("0123456789abcdef0123\n", mode: 0o644)
        defer { unlink(path) }
        let (_, warning) = try ReplicationToken.load(path: path)
        #expect(warning?.contains("chmod 600") == true)
    }

    @Test func emptyShortAndMissingFilesAreRefused() throws {
        let empty = try write("\n", mode: 0o600)
        defer { unlink(empty) }
        #expect(throws: ReplicationTokenError.empty) { try ReplicationToken.load(path: empty) }
        let short = try write("short\n", mode: 0o600)
        defer { unlink(short) }
        #expect(throws: ReplicationTokenError.tooShort(5)) { try ReplicationToken.load(path: short) }
        #expect(throws: ReplicationTokenError.unreadable(path: "/nonexistent/token", errno: ENOENT)) {
            try ReplicationToken.load(path: "/nonexistent/token")
        }
    }
}
