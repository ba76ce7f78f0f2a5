import Foundation
import HTTPFront
import Reactor
import Platform
import StorageEngine
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
import StorageEngineTesting
#endif

// Helpers of the HTTP front's integration tests: a raw-socket HTTP/1.1 client that sends exact
// bytes and parses responses, an in-process server on an ephemeral port over a temporary data
// directory, and the small_db_server executable run as a real child process.
//
// Everything here is synchronous and bounded: every read has a deadline, every wait polls a
// condition until a deadline (the pause between polls paces the loop, the outcome depends on the
// condition). Tests run in parallel: each one makes its own server, port and directory.

/// A failure of the test machinery itself (a timeout, a server that did not start…), thrown so
/// that the test stops with a message that says what was being waited for.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Waiting

/// The sanitizer this test process runs under, if any, found by its runtime's entry point (which
/// `swift test --sanitize=…` links into the test binary and the servers it builds).
enum Sanitizer {
    /// How many times slower than normal code runs: ThreadSanitizer about 5–15×, AddressSanitizer
    /// about 2–3×. Every deadline that only guards a wait against a hang (`Poll.until`, the raw
    /// connection's reads, waiting for a process, suite time limits) is this many times longer,
    /// so that a sanitizer's slowdown does not turn a condition that comes late into a failure.
    /// Windows in which something must NOT happen (`Poll.pause`, `staysQuiet`) are never scaled:
    /// they are what those tests are about.
    static let slowdown: Int = {
        if dlsym(nil, "__tsan_init") != nil { return 10 }
        if dlsym(nil, "__asan_init") != nil { return 3 }
        return 1
    }()
}

extension Duration {
    /// This deadline, allowing for a sanitizer's slowdown (`Sanitizer.slowdown`).
    var allowingForSanitizers: Duration { self * Sanitizer.slowdown }
}

enum Poll {
    /// Polls `condition` every few milliseconds until it holds (true) or `timeout` passes (false);
    /// the timeout allows for a sanitizer's slowdown.
    static func until(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout.allowingForSanitizers
        while true {
            if try condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(5_000)
        }
    }

    /// Sleeps for `duration`: only where the passing of time is what a test is about (a client
    /// that stalls, a timeout that must not fire early), never to wait for a condition.
    static func pause(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

extension Duration {
    /// Whole milliseconds (for poll(2)).
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

// MARK: - Requests

/// Builds request bytes by hand, so tests control every byte.
enum RawRequest {
    /// `method target version`, a Host field, `headers` (each "Name: value"), then the body with
    /// its Content-Length (if `body` is not nil).
    static func make(
        _ method: String, _ target: String, body: [UInt8]? = nil, headers: [String] = [], version: String = "HTTP/1.1"
    ) -> [UInt8] {
        var head = "\(method) \(target) \(version)\r\nHost: 127.0.0.1\r\n"
        for header in headers { head += header + "\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    static func make(
        _ method: String, _ target: String, body: String, headers: [String] = [], version: String = "HTTP/1.1"
    ) -> [UInt8] {
        make(method, target, body: Array(body.utf8), headers: headers, version: version)
    }

    /// A PUT of `value` (its UTF-8 bytes) in the API's JSON body, base64-encoded.
    static func put(_ target: String, value: [UInt8], headers: [String] = []) -> [UInt8] {
        make("PUT", target, body: #"{"value":"\#(base64(value))"}"#, headers: headers)
    }

    static func put(_ target: String, text: String, headers: [String] = []) -> [UInt8] {
        put(target, value: Array(text.utf8), headers: headers)
    }

    static func get(_ target: String, headers: [String] = []) -> [UInt8] {
        make("GET", target, headers: headers)
    }
}

func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
func base64(_ text: String) -> String { base64(Array(text.utf8)) }

/// Every byte of `bytes` as "%XX".
func percentEncodeAll(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%%%02X", $0) }.joined()
}

/// The body GET /v1/kv/{key} answers, with `jsonKey` already written as a JSON string literal.
func getBody(jsonKey: String, value: [UInt8]) -> String {
    #"{"key":\#(jsonKey),"value":"\#(base64(value))","encoding":"base64"}"# + "\n"
}

// MARK: - Responses

/// One parsed response: status line, header fields in order, body (framed by Content-Length).
struct RawResponse: Sendable, CustomStringConvertible {
    var version: String
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    /// The first value of the field `name` (case-insensitive), or nil.
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    func headerValues(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    var announcesClose: Bool {
        headerValues("Connection").contains { $0.lowercased().contains("close") }
    }

    var description: String {
        "\(version) \(status) \(reason) \(headers.map { "\($0.name): \($0.value)" }) \(text.prefix(300))"
    }
}

// MARK: - A raw client connection

/// A blocking TCP connection to 127.0.0.1 with bounded reads (poll before every recv) and writes
/// (SO_SNDTIMEO). The descriptor is close-on-exec, so child processes never inherit it.
final class RawConnection {
    let descriptor: Int32
    /// Received bytes not yet consumed by `readResponse`.
    private var received: [UInt8] = []
    private var isClosed = false

    /// Connects, or throws with the errno of the failure.
    init(port: UInt16, receiveBufferSize: Int32? = nil) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        if var size = receiveBufferSize {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var sendTimeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        let code = RawConnection.connect(descriptor, port: port)
        guard code == 0 else {
            Glibc.close(descriptor)
            throw ConnectFailure(errno: code)
        }
        self.descriptor = descriptor
    }

    struct ConnectFailure: Error, CustomStringConvertible {
        let errno: Int32
        var description: String { "connect failed: \(String(cString: strerror(errno))) (errno \(errno))" }
    }

    /// A port that was free a moment ago (bound to 127.0.0.1:0, then closed): only for tests that
    /// need an explicit port, and retry if it was taken in between.
    static func freePort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { Glibc.close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind 127.0.0.1:0: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// 0 if a connection to the port succeeds (it is closed at once), else the connect errno.
    static func probe(port: UInt16) -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return errno }
        defer { Glibc.close(descriptor) }
        return connect(descriptor, port: port)
    }

    private static func connect(_ descriptor: Int32, port: UInt16) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0 ? 0 : errno
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    // MARK: Sending

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && errno == EINTR {
                continue
            } else {
                throw TestFailure("send failed after \(offset) of \(bytes.count) bytes: errno \(errno)")
            }
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    // MARK: Receiving

    /// Waits for bytes and appends them to `received`. False at EOF (the server closed); throws on
    /// timeout or a socket error (a reset included).
    private func fill(until deadline: ContinuousClock.Instant) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let remaining = max(0, (deadline - ContinuousClock.now).milliseconds)
            var watched = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&watched, 1, Int32(clamping: remaining))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw TestFailure("timed out waiting for the server (received so far: \(String(decoding: received.prefix(200), as: UTF8.self)))") }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 { return false }
            if errno == EINTR || errno == EAGAIN { continue }
            throw TestFailure("recv failed: \(String(cString: strerror(errno))) (errno \(errno))")
        }
    }

    /// Reads one response: the head, then Content-Length body bytes (none for a HEAD request, a
    /// 1xx, 204 or 304). Bytes after it stay buffered for the next call.
    func readResponse(toHEAD: Bool = false, timeout: Duration = .seconds(10)) throws -> RawResponse {
        let deadline = ContinuousClock.now + timeout.allowingForSanitizers
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while true {
            if let range = received.firstRange(of: separator) {
                headEnd = range.lowerBound
                break
            }
            guard try fill(until: deadline) else {
                throw TestFailure("connection closed before a complete response head (received: \(String(decoding: received, as: UTF8.self).prefix(300)))")
            }
        }
        let head = String(decoding: received[..<headEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestFailure("bad status line: \(statusLine)") }
        var response = RawResponse(
            version: String(parts[0]), status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: [], body: [])
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw TestFailure("bad header line: \(line)") }
            response.headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var bodyLength = 0
        if !toHEAD && !(100...199).contains(status) && status != 204 && status != 304 {
            guard let text = response.header("Content-Length"), let length = Int(text) else {
                throw TestFailure("response without Content-Length: \(response)")
            }
            bodyLength = length
        }
        let bodyStart = headEnd! + 4
        while received.count - bodyStart < bodyLength {
            guard try fill(until: deadline) else { throw TestFailure("connection closed inside a response body") }
        }
        response.body = Array(received[bodyStart..<(bodyStart + bodyLength)])
        received.removeFirst(bodyStart + bodyLength)
        return response
    }

    /// Sends `request` and reads its response.
    func exchange(_ request: [UInt8], toHEAD: Bool = false, timeout: Duration = .seconds(10)) throws -> RawResponse {
        try send(request)
        return try readResponse(toHEAD: toHEAD, timeout: timeout)
    }

    /// Waits until the server closes the connection; returns what arrived before the end (beyond
    /// what `readResponse` consumed). Throws if the connection is still open at the deadline.
    func readUntilClosed(timeout: Duration = .seconds(10)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout.allowingForSanitizers
        while try fill(until: deadline) {}
        defer { received.removeAll() }
        return received
    }

    /// True if nothing arrives (not even the end of the stream) for `duration`. Consumes nothing.
    func staysQuiet(for duration: Duration) -> Bool {
        guard received.isEmpty else { return false }
        var watched = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&watched, 1, Int32(duration.milliseconds)) == 0
    }
}

// MARK: - Temporary directories

/// A fresh private directory, deleted with everything in it by `remove()`.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("small-db-http-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

// MARK: - An in-process server

/// A database in a temporary directory and an `HTTPServer` on 127.0.0.1, port chosen by the kernel.
final class InProcessServer {
    let root: TemporaryDirectory
    let dataDirectory: String
    let database: Database
    let server: HTTPServer
    let port: UInt16

    init(role: any ServerRole = StandalonePrimary(), _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws {
        root = try TemporaryDirectory()
        dataDirectory = root.file("data")
        database = try Database.open(directory: dataDirectory, create: true, options: .forTests)
        var configuration = HTTPServerConfiguration()
        configuration.address = NetworkAddress(host: "127.0.0.1", port: 0)
        configuration.eventLoops = 2
        configure(&configuration)
        server = HTTPServer(database: database, role: role, configuration: configuration)
        do {
            try server.start()
        } catch {
            database.close()
            root.remove()
            throw error
        }
        port = server.port!
    }

    func connect(receiveBufferSize: Int32? = nil) throws -> RawConnection {
        try RawConnection(port: port, receiveBufferSize: receiveBufferSize)
    }

    /// One request on a connection of its own.
    func exchange(_ request: [UInt8], toHEAD: Bool = false) throws -> RawResponse {
        try connect().exchange(request, toHEAD: toHEAD)
    }

    func stop() {
        server.shutdown(gracePeriod: .seconds(2))
        database.close()
        root.remove()
    }
}

/// Runs `body` with a fresh in-process server, stopped (and its directory deleted) afterwards.
func withServer<R>(
    role: any ServerRole = StandalonePrimary(), _ configure: (inout HTTPServerConfiguration) -> Void = { _ in },
    _ body: (InProcessServer) throws -> R
) throws -> R {
    let server = try InProcessServer(role: role, configure)
    defer { server.stop() }
    return try body(server)
}

// MARK: - Child processes

enum ExitStatus: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        self = status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }

    var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// Child processes through posix_spawn: stdin from /dev/null, stdout and stderr to files, and
/// every other descriptor closed in the child before exec (posix_spawn runs the child on the
/// parent's memory until exec, so the window in which it holds copies of this process's
/// descriptors, such as a data directory's flock'd LOCK, is as short as it can be; see the
/// child-process caveat in Tests/StorageEngineTests/TestSupport.swift).
enum ChildProcess {
    static func spawn(
        _ executable: String, _ arguments: [String], stdout: String, stderr: String, environment: [String]? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let closeFrom = ChildProcess.addCloseFrom { _ = closeFrom(&actions, 3) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let environmentStrings = environment ?? ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let envp: [UnsafeMutablePointer<CChar>?] = environmentStrings.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else { throw TestFailure("posix_spawn \(executable): \(String(cString: strerror(result)))") }
        return pid
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34 and later), which Swift's Glibc
    /// module does not export: it closes every descriptor from 3 up in the child, including those
    /// other tests created without O_CLOEXEC (such as Foundation pipes to their own children).
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
    }()

    /// Waits for `pid` to end, at most `timeout`; nil if it is still running then.
    static func wait(_ pid: pid_t, timeout: Duration) -> ExitStatus? {
        var result: ExitStatus?
        _ = Poll.until(timeout: timeout) {
            var status: Int32 = 0
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { result = ExitStatus(waitStatus: status) }
            return waited != 0
        }
        return result
    }

    /// The environment of this process without proxy settings (for curl).
    static var environmentWithoutProxies: [String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.lowercased().hasSuffix("_proxy") }.map { "\($0.key)=\($0.value)" }
    }

    /// Runs a program to its end (bounded); returns its exit status, standard output and error.
    static func run(
        _ executable: String, _ arguments: [String], in directory: TemporaryDirectory, timeout: Duration = .seconds(20),
        environment: [String]? = nil
    ) throws -> (status: ExitStatus, stdout: String, stderr: String) {
        let name = UUID().uuidString
        let stdoutPath = directory.file("\(name).stdout")
        let stderrPath = directory.file("\(name).stderr")
        let pid = try spawn(executable, arguments, stdout: stdoutPath, stderr: stderrPath, environment: environment)
        guard let status = wait(pid, timeout: timeout) else {
            kill(pid, SIGKILL)
            _ = wait(pid, timeout: .seconds(5))
            throw TestFailure("\(executable) \(arguments) did not finish within \(timeout)")
        }
        return (status, readText(stdoutPath), readText(stderrPath))
    }

    static func readText(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

/// An executable SwiftPM built next to this test bundle (this target depends on small_db_server).
func builtExecutable(_ name: String) throws -> String {
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    var directory = testBinary.deletingLastPathComponent()
    // The test binary may sit inside a bundle directory (…/X.xctest/…); step up to the products directory.
    while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent(name).path) {
        let parent = directory.deletingLastPathComponent()
        guard parent.path != directory.path else { throw TestFailure("no executable \(name) near \(testBinary.path)") }
        directory = parent
    }
    return directory.appendingPathComponent(name).path
}

// MARK: - small_db_server as a process

/// small_db_server running on 127.0.0.1 with a kernel-chosen port (`-addr 127.0.0.1:0`; the port
/// is read from its "listening for HTTP on … port N" log line, so no two tests can race for one).
/// Its standard error, the log, goes to a file. Killed with SIGKILL if still running on `deinit`.
///
/// With a `placement` it runs elsewhere (another network namespace: NetworkNamespaces.swift): the
/// placement's command runs it there, and `port` is a port on this namespace's 127.0.0.1 that the
/// placement forwards to the server's own, so every helper reaches it the same way.
final class ServerProcess {
    let pid: pid_t
    let logPath: String
    let port: UInt16
    private(set) var exitStatus: ExitStatus?

    /// Starts the server on `dataDirectory` and waits (bounded) until GET /v1/health answers 200.
    init(
        dataDirectory: String, logPath: String, arguments: [String] = [], create: Bool = true,
        placement: (any ServerPlacement)? = nil
    ) throws {
        let executable = try builtExecutable("small_db_server")
        let start = ChildProcess.readText(logPath).utf8.count
        // A kernel-chosen replication port too (tests that need it pass their own -repl-addr
        // after this one; the last occurrence of a flag wins).
        var all = ["-dir", dataDirectory, "-addr", "127.0.0.1:0", "-repl-addr", "127.0.0.1:0"] + arguments
        if create { all.append("-create") }
        let command = (placement?.commandPrefix ?? []) + [executable] + all
        let pid = try ChildProcess.spawn(command[0], Array(command.dropFirst()), stdout: logPath + ".stdout", stderr: logPath)
        self.pid = pid
        self.logPath = logPath
        var port: UInt16?
        var exited: ExitStatus?
        let started = Poll.until(timeout: .seconds(20)) {
            let log = String(ChildProcess.readText(logPath).utf8.dropFirst(start)) ?? ""
            if let range = log.range(of: "listening for HTTP on 127.0.0.1 port ") {
                port = UInt16(log[range.upperBound...].prefix { $0.isNumber })
                return port != nil
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                exited = ExitStatus(waitStatus: status)
                return true
            }
            return false
        }
        guard started, let port, exited == nil else {
            if exited == nil {
                kill(pid, SIGKILL)
                _ = ChildProcess.wait(pid, timeout: .seconds(5))
            }
            throw TestFailure("small_db_server did not start (\(exited.map(\.description) ?? "no listening line")); log:\n\(ChildProcess.readText(logPath))")
        }
        let reachable: UInt16
        do {
            reachable = try placement?.forward(port: port) ?? port
        } catch {
            kill(pid, SIGKILL)
            _ = ChildProcess.wait(pid, timeout: .seconds(5))
            throw error
        }
        self.port = reachable
        let healthy = Poll.until(timeout: .seconds(10)) {
            (try? RawConnection(port: reachable).exchange(RawRequest.get("/v1/health")).status) == 200
        }
        guard healthy else {
            killAndWait()
            throw TestFailure("small_db_server never answered GET /v1/health on port \(reachable) (its own: \(port))")
        }
    }

    var log: String { ChildProcess.readText(logPath) }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the process to end (at most `timeout`); its status, or nil if still running.
    func waitForExit(timeout: Duration) -> ExitStatus? {
        if let exitStatus { return exitStatus }
        exitStatus = ChildProcess.wait(pid, timeout: timeout)
        return exitStatus
    }

    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = ExitStatus(waitStatus: status)
            return false
        }
        return true
    }

    /// SIGKILL, then reap.
    func killAndWait() {
        guard exitStatus == nil else { return }
        kill(pid, SIGKILL)
        exitStatus = ChildProcess.wait(pid, timeout: .seconds(10))
    }

    deinit { killAndWait() }
}

/// Where a `ServerProcess` runs when not beside the tests (in another network namespace).
protocol ServerPlacement: AnyObject {
    /// The command that runs an executable there (the executable and its arguments follow it).
    var commandPrefix: [String] { get }
    /// A port on this namespace's 127.0.0.1 that reaches `port` on the server's 127.0.0.1.
    func forward(port: UInt16) throws -> UInt16
}

// MARK: - Concurrent writers

/// Client threads, each PUTting its own keys in sequence on a keep-alive connection of its own:
/// key "<prefix>-w<writer>-<n>" gets the text "value <writer> <n>", n = 1, 2, … Records every
/// acknowledged (200) PUT. A writer stops at its first error or non-200 answer (the server went
/// away) or when asked to.
final class ConcurrentWriters: Sendable {
    let writers: Int
    let prefix: String
    private let acknowledged: Lock<[Int]>
    private let unexpected = Lock<[String]>([])
    private let stopRequested = Atomic<Bool>(false)
    private let running: Atomic<Int>

    init(writers: Int, prefix: String) {
        self.writers = writers
        self.prefix = prefix
        acknowledged = Lock([Int](repeating: 0, count: writers))
        running = Atomic(writers)
    }

    static func key(prefix: String, writer: Int, sequence: Int) -> String { "\(prefix)-w\(writer)-\(sequence)" }
    static func value(writer: Int, sequence: Int) -> String { "value \(writer) \(sequence)" }

    func start(port: UInt16) {
        for writer in 0..<writers {
            let thread = Thread { [self] in
                defer { running.subtract(1, ordering: .releasing) }
                run(writer: writer, port: port)
            }
            thread.start()
        }
    }

    private func run(writer: Int, port: UInt16) {
        guard let connection = try? RawConnection(port: port) else { return }
        var sequence = 0
        while !stopRequested.load(ordering: .relaxed) {
            sequence += 1
            let key = ConcurrentWriters.key(prefix: prefix, writer: writer, sequence: sequence)
            let request = RawRequest.put("/v1/kv/" + key, text: ConcurrentWriters.value(writer: writer, sequence: sequence))
            guard let response = try? connection.exchange(request) else { return }
            guard response.status == 200 else {
                unexpected.withLock { $0.append("writer \(writer) PUT \(key): \(response)") }
                return
            }
            acknowledged.withLock { $0[writer] = sequence }
        }
    }

    /// Each writer's last acknowledged sequence number (0: none).
    var lastAcknowledged: [Int] { acknowledged.withLock { $0 } }
    var totalAcknowledged: Int { lastAcknowledged.reduce(0, +) }
    var unexpectedAnswers: [String] { unexpected.withLock { $0 } }

    func stop() { stopRequested.store(true, ordering: .relaxed) }

    /// Waits (bounded) until every writer thread has returned.
    func join(timeout: Duration = .seconds(15)) -> Bool {
        Poll.until(timeout: timeout) { running.load(ordering: .acquiring) == 0 }
    }

    /// Checks on a running server that every acknowledged PUT is there with its value, that the one
    /// in flight per writer is there or not, and that nothing after it is. Returns the mismatches.
    func verify(port: UInt16) throws -> [String] {
        let connection = try RawConnection(port: port)
        var mismatches: [String] = []
        for (writer, last) in lastAcknowledged.enumerated() {
            for sequence in 1...(last + 2) {
                let key = ConcurrentWriters.key(prefix: prefix, writer: writer, sequence: sequence)
                let response = try connection.exchange(RawRequest.get("/v1/kv/" + key))
                let expected = getBody(jsonKey: "\"\(key)\"", value: Array(ConcurrentWriters.value(writer: writer, sequence: sequence).utf8))
                let present = response.status == 200 && response.text == expected
                let absent = response.status == 404
                switch sequence {
                case ...last where !present:
                    mismatches.append("acknowledged \(key) lost: \(response)")
                case last + 1 where !present && !absent:
                    mismatches.append("in-flight \(key) is neither there nor absent: \(response)")
                case (last + 2)... where !absent:
                    mismatches.append("\(key) was never sent but is there: \(response)")
                default:
                    break
                }
            }
        }
        return mismatches
    }
}

// MARK: - Prometheus text

/// The value of the sample line `series` (name with its labels exactly as rendered), or nil.
func metricValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

