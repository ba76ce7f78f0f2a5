import Foundation
import Platform
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Helpers of the network fault tests (NetworkFaultTests.swift): a primary and a backup in two
// network namespaces (`NamespacePair`), and writers that record the outcome of every PUT they
// send, so that each acknowledged write can be looked for at the end.

/// Servers A (namespace a, 10.77.0.1) and B (namespace b, 10.77.0.2) with their data directories
/// and logs. `tearDown` kills them, then deletes the namespaces and the directory.
final class NetworkFaultBed {
    let network: NamespacePair
    let servers: ReplicationBed

    init() throws {
        servers = try ReplicationBed()
        do {
            network = try NamespacePair()
        } catch {
            servers.tearDown()
            throw error
        }
    }

    /// Starts a primary in `end`'s namespace, its replication port on the link (fixed: each
    /// namespace is private), heartbeats every 100 ms.
    func startPrimary(_ name: String, in end: NamespaceEnd, _ arguments: [String] = [], create: Bool = true) throws -> ServerProcess {
        try servers.start(
            name, data: servers.directory(name),
            ["-repl-addr", end.replicationAddress, "-repl-heartbeat-interval", "100ms"] + arguments,
            create: create, placement: end)
    }

    /// Starts a backup in `end`'s namespace following `primary` (host:port as seen from there);
    /// once promoted it listens on its own end of the link.
    func startBackup(
        _ name: String, in end: NamespaceEnd, of primary: String, _ arguments: [String] = [], create: Bool = true
    ) throws -> ServerProcess {
        try servers.start(
            name, data: servers.directory(name),
            ["-repl-addr", end.replicationAddress, "-repl-heartbeat-interval", "100ms", "-backup-of", primary] + arguments,
            create: create, placement: end)
    }

    var logs: String { servers.logs }

    func tearDown() {
        servers.tearDown()
        network.remove()
    }
}

/// Client threads, each PUTting keys "<prefix>-w<writer>-<n>" (value "<prefix> <writer> <n>") in
/// sequence on a keep-alive connection of its own, a pause of `pace` between two, until stopped.
/// Unlike `ConcurrentWriters` they go on after a refusal or a lost connection (reconnecting to the
/// same port), and record every PUT that was sent with its outcome:
/// - acknowledged: 200;
/// - refused: 403, or 503 `… write refused` (-repl-sync required, no backup in sync): nothing was
///   written;
/// - unknown: any other answer (503 `the write is durable on this server but no backup confirmed
///   it`), or none (the connection failed after the request was sent).
final class RecordingWriters: Sendable {
    enum Outcome: Sendable { case acknowledged, refused, unknown }
    struct Attempt: Sendable {
        let key: String
        let value: String
        let sent: ContinuousClock.Instant
        let answered: ContinuousClock.Instant
        let outcome: Outcome
    }

    let prefix: String
    let writers: Int
    let pace: Duration
    private let attempts = Lock<[Attempt]>([])
    private let acknowledged = Atomic<Int>(0)
    private let stopRequested = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)

    init(prefix: String, writers: Int = 4, pace: Duration = .milliseconds(5)) {
        self.prefix = prefix
        self.writers = writers
        self.pace = pace
    }

    func start(port: UInt16) {
        running.store(writers, ordering: .releasing)
        for writer in 0..<writers {
            Thread { [self] in
                defer { running.subtract(1, ordering: .releasing) }
                run(writer: writer, port: port)
            }.start()
        }
    }

    private func run(writer: Int, port: UInt16) {
        var connection: RawConnection?
        var sequence = 0
        while !stopRequested.load(ordering: .relaxed) {
            if connection == nil {
                connection = try? RawConnection(port: port)
                if connection == nil {
                    Poll.pause(.milliseconds(20))  // the server is away: try again shortly
                    continue
                }
            }
            sequence += 1
            let key = "\(prefix)-w\(writer)-\(sequence)"
            let value = "\(prefix) \(writer) \(sequence)"
            let sent = ContinuousClock.now
            let outcome: Outcome
            if let response = try? connection!.exchange(RawRequest.put("/v1/kv/" + key, text: value), timeout: .seconds(20)) {
                switch response.status {
                case 200: outcome = .acknowledged
                case 403: outcome = .refused
                case 503 where response.text.contains("write refused"): outcome = .refused
                default: outcome = .unknown
                }
            } else {
                outcome = .unknown
                connection = nil
                Poll.pause(.milliseconds(50))  // the server went away: do not flood it (or the record) with attempts
            }
            attempts.withLock { $0.append(Attempt(key: key, value: value, sent: sent, answered: .now, outcome: outcome)) }
            if outcome == .acknowledged { acknowledged.add(1, ordering: .relaxed) }
            Poll.pause(pace)
        }
    }

    var acknowledgedCount: Int { acknowledged.load(ordering: .relaxed) }
    var all: [Attempt] { attempts.withLock { $0 } }

    /// Stops the writers and waits (bounded) for their threads.
    @discardableResult
    func stop() -> Bool {
        stopRequested.store(true, ordering: .relaxed)
        return Poll.until(timeout: .seconds(30)) { running.load(ordering: .acquiring) == 0 }
    }

    /// What `server` holds for each attempt that contradicts its outcome: an acknowledged write
    /// missing or with another value, a refused one present. (An unknown one may be either.)
    func contradictions(on server: ServerProcess) throws -> [String] {
        let connection = try RawConnection(port: server.port)
        var found: [String] = []
        for attempt in all {
            let response = try connection.exchange(RawRequest.get("/v1/kv/" + attempt.key))
            let present = response.status == 200 && base64Value(of: response) == base64(attempt.value)
            let absent = response.status == 404
            switch attempt.outcome {
            case .acknowledged where !present: found.append("acknowledged \(attempt.key) lost: \(response.status) \(response.text.prefix(100))")
            case .refused where !absent: found.append("refused \(attempt.key) is there: \(response.status) \(response.text.prefix(100))")
            case .unknown where !present && !absent: found.append("\(attempt.key): \(response.status) \(response.text.prefix(100))")
            default: break
            }
        }
        return found
    }

    /// The acknowledged writes that `server` does not hold with their value.
    func lostAcknowledged(on server: ServerProcess) throws -> [Attempt] {
        let connection = try RawConnection(port: server.port)
        return try all.filter { attempt in
            guard attempt.outcome == .acknowledged else { return false }
            let response = try connection.exchange(RawRequest.get("/v1/kv/" + attempt.key))
            return !(response.status == 200 && base64Value(of: response) == base64(attempt.value))
        }
    }
}

/// The keys on which two servers answer GET differently (status or body), among `keys`.
func differences(_ first: ServerProcess, _ second: ServerProcess, keys: [String]) throws -> [String] {
    let one = try RawConnection(port: first.port)
    let other = try RawConnection(port: second.port)
    var found: [String] = []
    for key in keys {
        let a = try one.exchange(RawRequest.get("/v1/kv/" + key))
        let b = try other.exchange(RawRequest.get("/v1/kv/" + key))
        if a.status != b.status || a.body != b.body { found.append("\(key): \(a.status) \(a.text.prefix(80)) vs \(b.status) \(b.text.prefix(80))") }
    }
    return found
}

/// Waits until `backup` is in sync with `primary` and holds what it acknowledged (marker writes),
/// and both logs end at the same position; false at the deadline.
func waitUntilIdentical(_ primary: ServerProcess, _ backup: ServerProcess, timeout: Duration = .seconds(60)) -> Bool {
    guard primary.waitForFigures(timeout: timeout, { $0.connected && $0.inSync }).holds,
        waitUntilCaughtUp(primary, backup, timeout: timeout)
    else { return false }
    return Poll.until(timeout: timeout) {
        guard let p = try? primary.replicationFigures(), let b = try? backup.replicationFigures() else { return false }
        return p.logGeneration == b.logGeneration && p.logOffset == b.logOffset
    }
}

/// Prints one figure of a test (collected into docs/PERFORMANCE.md).
func report(_ line: String) {
    print("network fault figures: \(line)")
}

extension Duration {
    var secondsText: String { String(format: "%.2f s", Double(components.seconds) + Double(components.attoseconds) / 1e18) }
}
