import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Helpers of the replication process tests (ReplicationProcessTests.swift): several small_db_server
// processes in one temporary directory, each with a log of its own; the replication port a
// primary listens on (read from its log, as ServerProcess reads the HTTP port); the figures of
// GET /v1/replication; key/value requests; directory listings and copies.

/// The small_db_server processes of one test, their data directories and logs under one
/// temporary directory. Every process gets a log file of its own (so that a restarted server's
/// log lines are never confused with its previous run's). `tearDown` kills them all and deletes
/// the directory.
final class ReplicationBed {
    let root: TemporaryDirectory
    private var started = 0
    private var processes: [(name: String, process: ServerProcess)] = []

    init() throws { root = try TemporaryDirectory() }

    func directory(_ name: String) -> String { root.file(name) }

    /// Starts small_db_server on `data` (`-addr` and `-repl-addr` 127.0.0.1:0 unless `arguments`
    /// give another -repl-addr) and waits until it answers GET /v1/health.
    ///
    /// With `-repl-ack-timeout 10s` unless `arguments` say otherwise: on a loaded machine a backup
    /// must not be detached for a slow acknowledgement, since the primary would then rightly
    /// acknowledge writes alone, and a test that reads them on the backup would fail for nothing.
    func start(
        _ name: String, data: String, _ arguments: [String] = [], create: Bool = true,
        placement: (any ServerPlacement)? = nil
    ) throws -> ServerProcess {
        started += 1
        let process = try ServerProcess(
            dataDirectory: data, logPath: root.file("\(name)-\(started).log"),
            arguments: ["-repl-ack-timeout", "10s"] + arguments, create: create, placement: placement)
        processes.append((name, process))
        return process
    }

    /// Starts a backup of the primary whose replication listener is on 127.0.0.1:`primaryPort`.
    func startBackup(
        _ name: String, data: String, of primaryPort: UInt16, _ arguments: [String] = [], create: Bool = true
    ) throws -> ServerProcess {
        try start(name, data: data, ["-backup-of", "127.0.0.1:\(primaryPort)"] + arguments, create: create)
    }

    /// Every process's log, for failure messages.
    var logs: String {
        processes.map { "----- \($0.name) (pid \($0.process.pid)) \($0.process.logPath):\n\($0.process.log)" }
            .joined(separator: "\n")
    }

    func tearDown() {
        for (_, process) in processes { process.killAndWait() }
        root.remove()
    }
}

// MARK: - One server's replication side, over HTTP

/// GET /v1/replication of a server with replication.
struct ReplicationFigures: Decodable, CustomStringConvertible {
    let role: String
    let epoch: Int
    let peer: String?
    let connected: Bool
    let inSync: Bool
    let lagBytes: Int
    let logGeneration: Int
    let logOffset: Int
    let detaches: Int
    let resyncs: Int
    let promotions: Int

    enum CodingKeys: String, CodingKey {
        case role, epoch, peer, connected, detaches, resyncs, promotions
        case inSync = "in_sync"
        case lagBytes = "lag_bytes"
        case logGeneration = "log_generation"
        case logOffset = "log_offset"
    }

    var description: String {
        "role \(role) epoch \(epoch) peer \(peer ?? "-") connected \(connected) in_sync \(inSync) lag \(lagBytes) "
            + "log \(logGeneration)@\(logOffset) detaches \(detaches) resyncs \(resyncs) promotions \(promotions)"
    }
}

extension ServerProcess {
    /// The port of the last "replication: listening for backups on 127.0.0.1:PORT" line of the
    /// log (a primary logs it at start, a backup when it is promoted), waiting for it.
    func replicationPort(timeout: Duration = .seconds(20)) throws -> UInt16 {
        let marker = "replication: listening for backups on 127.0.0.1:"
        var port: UInt16?
        _ = Poll.until(timeout: timeout) {
            let log = self.log
            guard let range = log.range(of: marker, options: .backwards) else { return false }
            port = UInt16(log[range.upperBound...].prefix { $0.isNumber })
            return port != nil
        }
        guard let port else { throw TestFailure("no \"\(marker)…\" line in the log:\n\(log)") }
        return port
    }

    /// One request on a connection of its own.
    func exchange(_ request: [UInt8]) throws -> RawResponse {
        try RawConnection(port: port).exchange(request)
    }

    func replicationFigures() throws -> ReplicationFigures {
        let response = try exchange(RawRequest.get("/v1/replication"))
        guard response.status == 200 else { throw TestFailure("GET /v1/replication: \(response)") }
        do {
            return try JSONDecoder().decode(ReplicationFigures.self, from: Data(response.body))
        } catch {
            throw TestFailure("GET /v1/replication: \(error): \(response.text)")
        }
    }

    /// The `role` of GET /v1/role.
    func roleName() throws -> String {
        let response = try exchange(RawRequest.get("/v1/role"))
        guard response.status == 200,
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let role = object["role"] as? String
        else { throw TestFailure("GET /v1/role: \(response)") }
        return role
    }

    /// Polls GET /v1/replication until `condition` holds; the last figures seen (nil: never read).
    @discardableResult
    func waitForFigures(
        timeout: Duration = .seconds(30), _ condition: (ReplicationFigures) -> Bool
    ) -> (holds: Bool, last: ReplicationFigures?) {
        var last: ReplicationFigures?
        let holds = Poll.until(timeout: timeout) {
            guard let figures = try? replicationFigures() else { return false }
            last = figures
            return condition(figures)
        }
        return (holds, last)
    }

    func put(_ key: String, _ value: String) throws -> RawResponse {
        try exchange(RawRequest.put("/v1/kv/" + key, text: value))
    }

    /// True if GET /v1/kv/`key` answers 200 with exactly `value`.
    func holds(_ key: String, _ value: String) -> Bool {
        guard let response = try? exchange(RawRequest.get("/v1/kv/" + key)) else { return false }
        return response.status == 200 && response.text == getBody(jsonKey: "\"\(key)\"", value: Array(value.utf8))
    }
}

/// The `value` (base64) of a GET /v1/kv answer, or nil if it is not a 200 with one.
func base64Value(of response: RawResponse) -> String? {
    guard response.status == 200,
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
    else { return nil }
    return object["value"] as? String
}

// MARK: - Keys written in a test

/// Keys "<prefix>-<n>" with values "<prefix> value <n>", PUT one at a time.
struct KeySeries {
    let prefix: String
    let count: Int

    func key(_ n: Int) -> String { "\(prefix)-\(n)" }
    func value(_ n: Int) -> String { "\(prefix) value \(n)" }

    /// PUTs every key on one connection; throws at the first answer that is not 200.
    func write(to server: ServerProcess) throws {
        let connection = try RawConnection(port: server.port)
        for n in 1...count {
            let response = try connection.exchange(RawRequest.put("/v1/kv/" + key(n), text: value(n)))
            guard response.status == 200 else { throw TestFailure("PUT \(key(n)): \(response)") }
        }
    }

    /// The keys that `server` does not hold with their value (one connection).
    func missing(on server: ServerProcess) throws -> [String] {
        let connection = try RawConnection(port: server.port)
        var missing: [String] = []
        for n in 1...count {
            let response = try connection.exchange(RawRequest.get("/v1/kv/" + key(n)))
            if response.status != 200 || response.text != getBody(jsonKey: "\"\(key(n))\"", value: Array(value(n).utf8)) {
                missing.append("\(key(n)): \(response.status) \(response.text.prefix(120))")
            }
        }
        return missing
    }
}

// MARK: - Data directories

enum DataDirectory {
    /// The names of the checkpoint.N and logfile.N files in `path`, sorted.
    static func generationFiles(_ path: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { name in
            for prefix in ["checkpoint.", "logfile."] where name.hasPrefix(prefix) {
                let suffix = name.dropFirst(prefix.count)
                return !suffix.isEmpty && suffix.allSatisfy(\.isNumber)
            }
            return false
        }.sorted()
    }

    /// Copies every regular file of `source` into a new directory `destination`, as fresh files
    /// with mode 0644 (the fixtures in the repository are read-only; a copy must be writable).
    static func copy(_ source: String, to destination: String) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: source + "/" + name))
            guard FileManager.default.createFile(atPath: destination + "/" + name, contents: bytes, attributes: [.posixPermissions: 0o644])
            else { throw TestFailure("cannot write \(destination)/\(name)") }
        }
    }

    /// Tests/StorageEngineTests/Fixtures/go-small-db: data directories written by the Go small-db.
    static let goFixtures: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StorageEngineTests/Fixtures/go-small-db").path

    /// The expected contents of a Go fixture: base64(key) → base64(value).
    static func goFixtureContents(_ name: String) throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: goFixtures + "/\(name).expected.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let map = object["keys_base64_to_value_base64"] as? [String: String]
        else { throw TestFailure("\(name).expected.json has no keys_base64_to_value_base64 map") }
        return map
    }
}

// MARK: - Raw replication-port clients

extension RawConnection {
    /// Waits until the peer ends the connection (EOF or a reset), discarding whatever arrives;
    /// false if it is still open at the deadline.
    func waitUntilClosedByPeer(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let remaining = (deadline - ContinuousClock.now).milliseconds
            guard remaining > 0 else { return false }
            var watched = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&watched, 1, Int32(clamping: remaining))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return false }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 { continue }
            if count == 0 { return true }
            if errno == EINTR || errno == EAGAIN { continue }
            return true  // ECONNRESET and the like: closed by the peer
        }
    }
}

/// A count of the lines of `log` that contain `text`.
func lineCount(_ log: String, containing text: String) -> Int {
    log.split(separator: "\n").filter { $0.contains(text) }.count
}

/// Waits until `backup` holds everything `primary` acknowledged before the call: PUTs marker keys
/// on the primary until the backup holds one (a backup applies the log in order, so it then holds
/// everything before it). False if none arrived within `timeout`.
func waitUntilCaughtUp(_ primary: ServerProcess, _ backup: ServerProcess, timeout: Duration = .seconds(30)) -> Bool {
    var attempt = 0
    return Poll.until(timeout: timeout) {
        attempt += 1
        let key = "caught-up-marker-\(attempt)"
        guard (try? primary.put(key, "marker \(attempt)"))?.status == 200 else { return false }
        return Poll.until(timeout: .seconds(2)) { backup.holds(key, "marker \(attempt)") }
    }
}
