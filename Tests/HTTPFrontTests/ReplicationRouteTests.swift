import Foundation
import HTTPFront
import Platform
import StorageEngine
import Testing

/// The HTTP front's side of replication, through `ServerRole` with a fake role whose state the
/// tests change while the server runs: writes refused (403 on a backup or a fenced primary, 503
/// while no backup is in sync), POST /v1/promote, GET /v1/replication and the replication series
/// of /metrics.
@Suite("Replication routes")
struct ReplicationRouteTests {
    /// A role the test drives: what it reports and what `promote` does are plain state.
    final class FakeRole: ServerRole {
        struct State {
            var role: ReplicationRole = .backup
            var writeRefusal: WriteRefusal? = .backup
            var status: ReplicationStatus? = ReplicationStatus(role: .backup, epoch: 3)
            /// What `promote` answers when it does not promote (nil: it promotes a backup).
            var promoteRefusal: String?
            var promoteCalls = 0
        }

        let state: Lock<State>

        init(_ state: State = State()) { self.state = Lock(state) }

        func update(_ body: (inout State) -> Void) { state.withLock { body(&$0) } }
        var promoteCalls: Int { state.withLock { $0.promoteCalls } }

        var role: ReplicationRole { state.withLock { $0.role } }
        var writeRefusal: WriteRefusal? { state.withLock { $0.writeRefusal } }
        var replicationStatus: ReplicationStatus? { state.withLock { $0.status } }

        /// Like the replication layer: a backup becomes a primary of the next epoch and takes
        /// writes; a primary answers that it already is one.
        func promote() -> PromotionOutcome {
            state.withLock { state in
                state.promoteCalls += 1
                if let why = state.promoteRefusal { return .refused(why) }
                let epoch = state.status?.epoch ?? 0
                guard state.role == .backup else { return .alreadyPrimary(epoch: epoch) }
                state.role = .primary
                state.writeRefusal = nil
                state.status?.role = .primary
                state.status?.epoch = epoch + 1
                state.status?.promotions += 1
                return .promoted(epoch: epoch + 1)
            }
        }
    }

    static let fullStatus = ReplicationStatus(
        role: .backup, epoch: 3, syncMode: .available, peer: "127.0.0.1:9090", connected: true, inSync: true,
        lagBytes: 0, logGeneration: 2, logOffset: 1234, lastContactSecondsAgo: 0.1, detaches: 0, resyncs: 1, promotions: 0)

    // MARK: Writes refused

    struct Refusal: Sendable, CustomTestStringConvertible {
        let refusal: WriteRefusal
        let status: Int
        let message: String
        var testDescription: String { "\(refusal)" }
    }

    @Test(arguments: [
        Refusal(refusal: .backup, status: 403, message: "writes are disabled on backup"),
        Refusal(refusal: .noBackupInSync, status: 503, message: "no backup is in sync and -repl-sync=required: write refused"),
        Refusal(refusal: .fenced(newerEpoch: 7), status: 403, message: "this primary was superseded by a newer one (epoch 7): read-only"),
    ])
    func writesAreRefusedWithTheRefusalsStatus(_ refusal: Refusal) throws {
        let role = FakeRole(.init(role: .primary, writeRefusal: refusal.refusal))
        try withServer(role: role) { server in
            let connection = try server.connect()
            let expectedBody = "{\"error\":\"\(refusal.message)\"}\n"
            for request in [
                RawRequest.put("/v1/kv/k", text: "v"),
                RawRequest.make("DELETE", "/v1/kv/k"),
                RawRequest.make("POST", "/v1/checkpoint"),
            ] {
                let response = try connection.exchange(request)
                #expect(response.status == refusal.status, "\(response)")
                #expect(response.header("Content-Type") == "application/json")
                #expect(response.text == expectedBody)
                #expect(!response.announcesClose)
            }
            // Nothing was written; reads still work.
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
            #expect(server.database.stats.puts == 0)
            #expect(server.database.stats.checkpoints == 0)
        }
    }

    @Test func aPromotedBackupTakesWritesAtOnce() throws {
        let role = FakeRole()
        try withServer(role: role) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"backup\",\"writable\":false}\n")
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 403)

            let promoted = try connection.exchange(RawRequest.make("POST", "/v1/promote"))
            #expect(promoted.status == 200)
            #expect(promoted.header("Content-Type") == "application/json")
            #expect(promoted.text == "{\"role\":\"primary\",\"epoch\":4}\n")

            #expect(try connection.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"primary\",\"writable\":true}\n")
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).text == getBody(jsonKey: "\"k\"", value: Array("v".utf8)))
            #expect(try connection.exchange(RawRequest.make("POST", "/v1/checkpoint")).status == 200)

            // The role changes under the server again: fenced, then back.
            role.update { $0.writeRefusal = .fenced(newerEpoch: 5) }
            let fenced = try connection.exchange(RawRequest.make("DELETE", "/v1/kv/k"))
            #expect(fenced.status == 403)
            #expect(fenced.text == "{\"error\":\"this primary was superseded by a newer one (epoch 5): read-only\"}\n")
            role.update { $0.writeRefusal = nil }
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/k")).status == 200)
        }
    }

    // MARK: Writability (a load balancer's view)

    /// A fenced primary still says `primary` (the Go-compatible role), but `writable` in
    /// /v1/role and /v1/replication, and /v1/writable's status, say that it refuses writes; so
    /// does a primary with no backup in sync under -repl-sync=required.
    @Test(arguments: [
        Refusal(refusal: .fenced(newerEpoch: 7), status: 503, message: "this primary was superseded by a newer one (epoch 7): read-only"),
        Refusal(refusal: .noBackupInSync, status: 503, message: "no backup is in sync and -repl-sync=required: write refused"),
    ])
    func aPrimaryThatRefusesWritesSaysSo(_ refusal: Refusal) throws {
        let role = FakeRole(.init(role: .primary, writeRefusal: nil, status: ReplicationStatus(role: .primary, epoch: 6)))
        try withServer(role: role) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"primary\",\"writable\":true}\n")
            #expect(try connection.exchange(RawRequest.get("/v1/replication")).text.hasPrefix(#"{"role":"primary","writable":true,"epoch":6,"#))
            let writable = try connection.exchange(RawRequest.get("/v1/writable"))
            #expect(writable.status == 200)
            #expect(writable.header("Content-Type") == "application/json")
            #expect(writable.text == "{\"writable\":true}\n")

            role.update { $0.writeRefusal = refusal.refusal }
            #expect(try connection.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"primary\",\"writable\":false}\n")
            #expect(try connection.exchange(RawRequest.get("/v1/replication")).text.hasPrefix(#"{"role":"primary","writable":false,"epoch":6,"#))
            let refused = try connection.exchange(RawRequest.get("/v1/writable"))
            #expect(refused.status == refusal.status)
            #expect(refused.text == "{\"writable\":false,\"error\":\"\(refusal.message)\"}\n")
            #expect(!refused.announcesClose)
            let head = try connection.exchange(RawRequest.make("HEAD", "/v1/writable"), toHEAD: true)
            #expect(head.status == refusal.status)
            #expect(head.body.isEmpty)

            role.update { $0.writeRefusal = nil }
            #expect(try connection.exchange(RawRequest.get("/v1/writable")).status == 200)
        }
    }

    /// A load balancer's health check often cannot send a token: /v1/writable, like /v1/health,
    /// needs none (it says nothing about the data).
    @Test func writableNeedsNoToken() throws {
        let role = FakeRole()
        try withServer(role: role, { $0.authToken = Array("secret".utf8) }) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/role")).status == 401)
            let response = try connection.exchange(RawRequest.get("/v1/writable"))
            #expect(response.status == 503)
            #expect(response.text == "{\"writable\":false,\"error\":\"writes are disabled on backup\"}\n")
            let wrong = try connection.exchange(RawRequest.make("PUT", "/v1/writable", body: "{}"))
            #expect(wrong.status == 405)
            #expect(wrong.headerValues("Allow") == ["GET"])
        }
    }

    // MARK: POST /v1/promote

    @Test func promoteOnAPrimaryAnswersAlreadyPrimary() throws {
        let role = FakeRole(.init(role: .primary, writeRefusal: nil, status: ReplicationStatus(role: .primary, epoch: 9)))
        try withServer(role: role) { server in
            let response = try server.exchange(RawRequest.make("POST", "/v1/promote"))
            #expect(response.status == 200)
            #expect(response.text == "{\"role\":\"primary\",\"epoch\":9}\n")
            #expect(role.promoteCalls == 1)
        }
    }

    @Test func promoteRefusedIs409WithTheReason() throws {
        let role = FakeRole(.init(promoteRefusal: "a \"promotion\" is already running"))
        try withServer(role: role) { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("POST", "/v1/promote"))
            #expect(response.status == 409)
            #expect(response.reason == "Conflict")
            #expect(response.text == #"{"error":"a \"promotion\" is already running"}"# + "\n")
            #expect(!response.announcesClose)
            #expect(try connection.exchange(RawRequest.get("/v1/role")).text == "{\"role\":\"backup\",\"writable\":false}\n")
        }
    }

    @Test func promoteOnAServerWithoutReplicationAnswersPrimaryEpoch0() throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.make("POST", "/v1/promote"))
            #expect(response.status == 200)
            #expect(response.text == "{\"role\":\"primary\",\"epoch\":0}\n")
        }
    }

    @Test(arguments: ["GET", "HEAD", "PUT", "DELETE"])
    func promoteWithAnotherMethodIs405(method: String) throws {
        let role = FakeRole()
        try withServer(role: role) { server in
            let response = try server.exchange(RawRequest.make(method, "/v1/promote"), toHEAD: method == "HEAD")
            #expect(response.status == 405)
            #expect(response.headerValues("Allow") == ["POST"])
            #expect(role.promoteCalls == 0)
            #expect(role.role == .backup)
        }
    }

    // MARK: GET /v1/replication

    @Test func replicationAnswersTheStatusAsJSON() throws {
        let role = FakeRole(.init(status: ReplicationRouteTests.fullStatus))
        try withServer(role: role) { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.get("/v1/replication"))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == """
                {"role":"backup","writable":false,"epoch":3,"sync_mode":"available","peer":"127.0.0.1:9090","connected":true,\
                "in_sync":true,"lag_bytes":0,"log_generation":2,"log_offset":1234,"last_contact_seconds_ago":0.1,\
                "detaches":0,"resyncs":1,"promotions":0}

                """)
            let head = try connection.exchange(RawRequest.make("HEAD", "/v1/replication"), toHEAD: true)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == String(response.body.count))
            #expect(head.body.isEmpty)

            // Unknown figures are null; the answer follows the role's state.
            role.update {
                $0.writeRefusal = nil
                $0.status = ReplicationStatus(
                    role: .primary, epoch: 12, syncMode: .required, peer: nil, connected: false, inSync: false,
                    lagBytes: 65536, logGeneration: 5, logOffset: 99, lastContactSecondsAgo: nil, detaches: 2, resyncs: 3, promotions: 1)
            }
            #expect(try connection.exchange(RawRequest.get("/v1/replication")).text == """
                {"role":"primary","writable":true,"epoch":12,"sync_mode":"required","peer":null,"connected":false,\
                "in_sync":false,"lag_bytes":65536,"log_generation":5,"log_offset":99,"last_contact_seconds_ago":null,\
                "detaches":2,"resyncs":3,"promotions":1}

                """)
            // Seconds to the millisecond, a valid JSON number whatever the value.
            for (seconds, text) in [(2.0, "2"), (1234.5678, "1234.568"), (0.0004, "0"), (-1.0, "0"), (Double.nan, "null")] {
                role.update { $0.status?.lastContactSecondsAgo = seconds }
                let body = try connection.exchange(RawRequest.get("/v1/replication")).text
                #expect(body.contains("\"last_contact_seconds_ago\":\(text),"), "\(seconds): \(body)")
                #expect((try? JSONSerialization.jsonObject(with: Data(body.utf8))) != nil, "\(body)")
            }
        }
    }

    @Test func replicationWithoutReplicationSaysOff() throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.get("/v1/replication"))
            #expect(response.status == 200)
            #expect(response.text == "{\"role\":\"primary\",\"writable\":true,\"replication\":\"off\"}\n")
        }
        let role = FakeRole(.init(role: .backup, status: nil))
        try withServer(role: role) { server in
            let response = try server.exchange(RawRequest.get("/v1/replication"))
            #expect(response.text == "{\"role\":\"backup\",\"writable\":false,\"replication\":\"off\"}\n")
        }
    }

    // MARK: /metrics

    @Test func metricsHaveTheReplicationSeries() throws {
        var status = ReplicationRouteTests.fullStatus
        status.lagBytes = 4096
        status.lastContactSecondsAgo = 0.25
        status.detaches = 4
        status.resyncs = 5
        status.promotions = 6
        let role = FakeRole(.init(status: status))
        try withServer(role: role) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/replication")).status == 200)
            #expect(try connection.exchange(RawRequest.make("POST", "/v1/promote")).status == 200)
            let text = try connection.exchange(RawRequest.get("/metrics")).text

            #expect(metricValue(text, #"smalldb_role{role="primary"}"#) == 1)
            #expect(metricValue(text, #"smalldb_role{role="backup"}"#) == nil)
            #expect(metricValue(text, "smalldb_writes_refused") == 0)
            #expect(metricValue(text, "smalldb_replication_epoch") == 4)
            #expect(metricValue(text, "smalldb_replication_connected") == 1)
            #expect(metricValue(text, "smalldb_replication_in_sync") == 1)
            #expect(metricValue(text, "smalldb_replication_lag_bytes") == 4096)
            #expect(metricValue(text, "smalldb_replication_last_contact_seconds") == 0.25)
            #expect(metricValue(text, "smalldb_replication_detaches_total") == 4)
            #expect(metricValue(text, "smalldb_replication_resyncs_total") == 5)
            #expect(metricValue(text, "smalldb_replication_promotions_total") == 7)
            for (name, type) in [
                ("smalldb_role", "gauge"), ("smalldb_writes_refused", "gauge"), ("smalldb_replication_epoch", "gauge"),
                ("smalldb_replication_connected", "gauge"), ("smalldb_replication_in_sync", "gauge"),
                ("smalldb_replication_lag_bytes", "gauge"), ("smalldb_replication_last_contact_seconds", "gauge"),
                ("smalldb_replication_detaches_total", "counter"), ("smalldb_replication_resyncs_total", "counter"),
                ("smalldb_replication_promotions_total", "counter"),
            ] {
                #expect(text.contains("# HELP \(name) "), "\(name)")
                #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name)")
            }
            #expect(metricValue(text, #"smalldb_http_requests_total{route="replication",method="GET",status="200"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="promote",method="POST",status="200"}"#) == 1)

            // A backup whose last contact is unknown: the role flips, the series without a value goes.
            role.update {
                $0.role = .backup
                $0.writeRefusal = .backup
                $0.status?.lastContactSecondsAgo = nil
                $0.status?.connected = false
            }
            let later = try connection.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(later, #"smalldb_role{role="backup"}"#) == 1)
            #expect(metricValue(later, #"smalldb_role{role="primary"}"#) == nil)
            #expect(metricValue(later, "smalldb_writes_refused") == 1)
            #expect(metricValue(later, "smalldb_replication_connected") == 0)
            #expect(!later.contains("smalldb_replication_last_contact_seconds"))
        }
    }

    @Test func metricsWithoutReplicationHaveTheRoleOnly() throws {
        try withServer { server in
            let text = try server.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(text, #"smalldb_role{role="primary"}"#) == 1)
            #expect(metricValue(text, "smalldb_writes_refused") == 0)
            #expect(!text.contains("smalldb_replication_"))
        }
    }

    // MARK: Authentication

    @Test func promoteAndReplicationNeedTheToken() throws {
        let role = FakeRole(.init(status: ReplicationRouteTests.fullStatus))
        try withServer(role: role, { $0.authToken = Array("t0ken".utf8) }) { server in
            let connection = try server.connect()
            for headers in [[], ["Authorization: Bearer wrong"]] {
                for request in [RawRequest.make("POST", "/v1/promote", headers: headers), RawRequest.get("/v1/replication", headers: headers)] {
                    let response = try connection.exchange(request)
                    #expect(response.status == 401)
                    #expect(response.headerValues("WWW-Authenticate") == ["Bearer"])
                }
                // 401 comes before the method check.
                #expect(try connection.exchange(RawRequest.get("/v1/promote", headers: headers)).status == 401)
            }
            #expect(role.promoteCalls == 0)
            #expect(role.role == .backup)

            let authorization = ["Authorization: Bearer t0ken"]
            #expect(try connection.exchange(RawRequest.get("/v1/replication", headers: authorization)).status == 200)
            let promoted = try connection.exchange(RawRequest.make("POST", "/v1/promote", headers: authorization))
            #expect(promoted.status == 200)
            #expect(promoted.text == "{\"role\":\"primary\",\"epoch\":4}\n")
        }
    }
}
