// small_db_server: the database over HTTP+JSON, with the Go small-db server's flags.
//
//   swift run -c release small_db_server -dir ./data -create            (listens on :8080)
//
// Startup: parse flags, open (and recover) the data directory, start replication (a primary
// listens on -repl-addr; with -backup-of, a read-only backup follows that primary), start the
// HTTP front, log where it listens. SIGINT or SIGTERM: stop accepting, finish in-flight requests
// within -shutdown-timeout, stop replication, close the database cleanly, exit 0. Flags and
// behaviour: docs/OPERATIONS.md.
import Dispatch
import GoFlags
import HTTPFront
import Platform
import Reactor
import Replication
import StorageEngine
#if canImport(Glibc)
import Glibc
#endif

let flags = FlagSet(programName: "small_db_server")
flags.string("dir", usage: "data directory (required)")
flags.bool("create", usage: "create the data directory if it does not exist")
flags.string("addr", default: ":8080", usage: "HTTP listen address")
flags.string("repl-addr", default: ":9090", usage: "replication listen address (primary)")
flags.string("backup-of", usage: "primary's replication address (host:port): run as a read-only backup")
flags.duration("repl-heartbeat-interval", default: .seconds(1), usage: "primary: heartbeat period (0 disables)")
flags.duration("repl-heartbeat-timeout", default: .seconds(5), usage: "backup: promote after this long without hearing from the primary (0 disables)")
flags.duration("repl-ack-timeout", default: .seconds(2), usage: "primary: detach a backup that has not acknowledged a batch for this long; 0 = never detach")
flags.string("repl-sync", default: "available", usage: "primary: \"available\" = go on alone when no backup is in sync; \"required\" = refuse writes with 503 while no backup is in sync")
flags.string("repl-token-file", usage: "file holding the replication token (at least 16 bytes; both servers need the same one): each side proves it knows it before anything else; without it the replication port is open to anyone")
flags.int("repl-max-handshakes", default: 8, usage: "primary: replication connections allowed in their handshake at once; more are closed at accept")
flags.duration("repl-snapshot-interval", default: .seconds(10), usage: "primary: shortest time between the starts of two snapshots for backups (each writes a checkpoint); one at a time")
flags.bool("disable-background-checkpoint", usage: "never checkpoint in the background")
flags.duration("checkpoint-interval", default: .zero, usage: "checkpoint when the last one is older than this (0 = 60s)")
flags.int("checkpoint-log-bytes", usage: "checkpoint when the WAL reaches this many bytes (0 = 64 MiB)")
flags.int("checkpoint-updates", usage: "checkpoint after this many committed updates (0 = off)")
flags.duration("shutdown-timeout", default: .seconds(5), usage: "on SIGINT/SIGTERM, how long in-flight requests may take to finish")
flags.bool("truncate-corrupt-log", usage: "if a WAL record is damaged with data after it, drop it and everything after it instead of refusing to start (logged; back up the directory first)")
flags.string("auth-token-file", usage: "file holding a bearer token; then every route but /v1/health and /v1/writable needs it")
flags.int("event-loops", default: HTTPServerConfiguration.coreCount, usage: "HTTP event-loop threads (default: one per core this process may use)")
flags.int("max-connections", default: 4096, usage: "client connections beyond this are answered 503 and closed")
flags.duration("request-timeout", default: .seconds(10), usage: "a client must send a whole request within this time of its first byte")
flags.duration("idle-timeout", default: .seconds(120), usage: "close keep-alive connections idle this long")
flags.duration("write-timeout", default: .seconds(30), usage: "close a connection whose client has taken none of its waiting answers for this long (0 = never)")
flags.parseOrExit()

func fail(_ message: String, status: Int32) -> Never {
    LogLine.write(.error, message)
    exit(status)
}

guard !flags.string("dir").isEmpty else {
    fail("flag -dir is required\n\(flags.usage)", status: 2)
}
let address: NetworkAddress
do throws(AddressError) {
    address = try NetworkAddress(parsing: flags.string("addr"))
} catch {
    fail("invalid value \"\(flags.string("addr"))\" for flag -addr: \(error.reason)\n\(flags.usage)", status: 2)
}
guard let syncMode = ReplicationSyncMode(rawValue: flags.string("repl-sync")) else {
    fail("invalid value \"\(flags.string("repl-sync"))\" for flag -repl-sync: expected available or required\n\(flags.usage)", status: 2)
}
let primaryAddress = flags.string("backup-of")
let isBackup = !primaryAddress.isEmpty

var options = DatabaseOptions()
// A backup's checkpoints mirror its primary's; its own start if it is promoted.
options.checkpoints.enabled = !flags.bool("disable-background-checkpoint") && !isBackup
if flags.duration("checkpoint-interval") > .zero { options.checkpoints.interval = flags.duration("checkpoint-interval") }
if flags.int("checkpoint-log-bytes") > 0 { options.checkpoints.logBytes = flags.int("checkpoint-log-bytes") }
options.checkpoints.updates = max(0, flags.int("checkpoint-updates"))
options.corruptLog = flags.bool("truncate-corrupt-log") ? .truncate : .refuse
options.log = { level, message in LogLine.write(level, message) }

var configuration = HTTPServerConfiguration()
configuration.address = address
configuration.maxConnections = max(1, flags.int("max-connections"))
configuration.eventLoops = max(1, flags.int("event-loops"))
configuration.requestReadTimeout = flags.duration("request-timeout")
configuration.idleTimeout = flags.duration("idle-timeout")
configuration.writeTimeout = flags.duration("write-timeout")
configuration.log = { level, message in LogLine.write(level, message) }
if !flags.string("auth-token-file").isEmpty {
    configuration.authToken = readToken(flags.string("auth-token-file"))
}

/// Blocks until SIGINT or SIGTERM arrives; returns its name. (The handlers run on a Dispatch
/// queue, off the main thread, so they capture nothing but the semaphore.)
func waitForTerminationSignal() -> String {
    let stop = DispatchSemaphore(value: 0)
    let name = Lock<String>("")
    var sources: [any DispatchSourceSignal] = []
    for (number, label) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { @Sendable in
            name.withLock { $0 = label }
            stop.signal()
        }
        source.resume()
        sources.append(source)
    }
    stop.wait()
    return name.withLock { $0 }
}

/// The token file's first line, without surrounding whitespace. Exits 2 if it is missing or empty.
func readToken(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "r") else { fail("-auth-token-file: cannot read \(path): \(errnoDescription(errno))", status: 2) }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 64 << 10)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { fail("-auth-token-file: \(path) is empty", status: 2) }
    let line = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    guard line.count < buffer.count - 1 || line.last == 0x0A else { fail("-auth-token-file: the token in \(path) is longer than 64 KiB", status: 2) }
    let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
    let token = Array(line.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    guard !token.isEmpty else { fail("-auth-token-file: \(path) holds no token", status: 2) }
    return token
}

var replication = ReplicationConfiguration()
replication.heartbeatInterval = flags.duration("repl-heartbeat-interval")
replication.heartbeatTimeout = flags.duration("repl-heartbeat-timeout")
replication.ackTimeout = flags.duration("repl-ack-timeout")
replication.syncMode = syncMode
replication.backgroundCheckpointsAsPrimary = !flags.bool("disable-background-checkpoint")
replication.log = { level, message in LogLine.write(level, message) }
replication.maxHandshakingConnections = max(1, flags.int("repl-max-handshakes"))
replication.minimumSnapshotInterval = max(.zero, flags.duration("repl-snapshot-interval"))
if !flags.string("repl-token-file").isEmpty {
    do throws(ReplicationTokenError) {
        let (token, warning) = try ReplicationToken.load(path: flags.string("repl-token-file"))
        if let warning { LogLine.write(.warning, warning) }
        replication.token = token
    } catch {
        fail("-repl-token-file: \(error)", status: 2)
    }
}
let replicationAddress = flags.string("repl-addr")
if !replicationAddress.isEmpty {
    // Sends on the write path are bounded by -repl-ack-timeout (ReplicationNode.liveSendTimeout);
    // this bounds the others (catch-up and snapshots, while a backup installs a snapshot).
    replication.makeListener = { () throws(TransportError) in
        try TCPReplicationListener(address: replicationAddress, sendTimeout: .seconds(30))
    }
}

LogLine.write(.info, "small_db_server starting: dir \(flags.string("dir")), \(configuration.eventLoops) event loop\(configuration.eventLoops == 1 ? "" : "s"), "
    + (isBackup ? "backup of \(primaryAddress)" : "primary"))
if isBackup {
    // A snapshot install that was cut short leaves a directory that cannot be opened; a backup
    // gets a new snapshot anyway, so it starts from empty.
    do {
        if try Database.discardIncompleteResync(directory: flags.string("dir")) {
            LogLine.write(.warning, "discarded the incomplete state of an interrupted resync; the primary will send a snapshot")
        }
    } catch DatabaseError.directoryMissing {
        // Created below with -create, or refused there.
    } catch {
        fail("cannot open \(flags.string("dir")): \(error)", status: 1)
    }
}
let node = ReplicationNode(configuration: replication)
let database: Database
do {
    database = try Database.open(
        directory: flags.string("dir"), create: flags.bool("create"), options: options, replicationSink: node)
} catch {
    fail("cannot open \(flags.string("dir")): \(error)", status: 1)
}
do {
    if isBackup {
        try node.startAsBackup(database: database, dialer: TCPReplicationDialer(address: primaryAddress))
    } else {
        try node.startAsPrimary(database: database)
    }
} catch {
    node.stop()
    database.close()
    fail("cannot start replication: \(error)", status: 1)
}

let server = HTTPServer(database: database, role: ReplicationServerRole(node: node), configuration: configuration)
do {
    try server.start()
} catch {
    node.stop()
    database.close()
    fail("cannot start the HTTP server: \(error)", status: 1)
}
let shownHost = address.host.isEmpty ? "0.0.0.0 and [::]" : address.host
LogLine.write(.info, "listening for HTTP on \(shownHost) port \(server.port ?? address.port)\(configuration.authToken == nil ? "" : " (bearer token required)")")

// Wait for SIGINT or SIGTERM.
let shutdownTimeout = flags.duration("shutdown-timeout")
let received = waitForTerminationSignal()
LogLine.write(.info, "received \(received): shutting down (in-flight requests have up to \(formatGoDuration(shutdownTimeout)))")
server.shutdown(gracePeriod: shutdownTimeout)
node.stop()
database.close()
LogLine.write(.info, "stopped cleanly")
exit(0)
