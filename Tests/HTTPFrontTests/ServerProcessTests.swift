import Foundation
import HTTPFront
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// small_db_server as a real process: the README's curl session, its flags, graceful shutdown
/// with requests in flight, and SIGKILL under concurrent writers.
@Suite("small_db_server process", .timeLimit(.minutes(2 * Sanitizer.slowdown)))
struct ServerProcessTests {
    // MARK: The README's curl examples

    /// The seed README's three curl commands (/work/shared/seed/small-db.txt), run as written
    /// with the server's address in place of localhost:8080, and their exact outputs.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "skipped: /usr/bin/curl is not installed, so the README's curl examples cannot be run"))
    func readmeCurlExamplesGiveTheDocumentedOutputs() throws {
        let curl = "/usr/bin/curl"
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let server = try ServerProcess(dataDirectory: root.file("data"), logPath: root.file("server.log"))
        defer { server.killAndWait() }
        let base = "http://127.0.0.1:\(server.port)"
        func run(_ arguments: [String]) throws -> String {
            let result = try ChildProcess.run(curl, arguments, in: root, environment: ChildProcess.environmentWithoutProxies)
            #expect(result.status == .exited(0), "curl \(arguments): \(result.stderr)")
            return result.stdout
        }

        let put = try run(["-X", "PUT", "\(base)/v1/kv/hello", "-H", "Content-Type: application/json", "-d", #"{"value":"d29ybGQ=","encoding":"base64"}"#])
        #expect(put == "{\"ok\":true}\n")
        let get = try run(["\(base)/v1/kv/hello"])
        #expect(get == "{\"key\":\"hello\",\"value\":\"d29ybGQ=\",\"encoding\":\"base64\"}\n")
        let delete = try run(["-X", "DELETE", "\(base)/v1/kv/hello"])
        #expect(delete == "{\"ok\":true}\n")
        let after = try run(["\(base)/v1/kv/hello"])
        #expect(after == "{\"error\":\"key not found: hello\"}\n")
        let health = try run(["\(base)/v1/health"])
        #expect(health == "{\"ok\":true}\n")
    }

    // MARK: Flags

    private func runServer(_ arguments: [String], in root: TemporaryDirectory) throws -> (status: ExitStatus, stdout: String, stderr: String) {
        try ChildProcess.run(try builtExecutable("small_db_server"), arguments, in: root)
    }

    @Test func helpPrintsUsageAndExits0() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        for flag in ["-h", "-help", "--help"] {
            let result = try runServer([flag], in: root)
            #expect(result.status == .exited(0), "\(flag)")
            let output = result.stdout + result.stderr
            #expect(output.contains("Usage of small_db_server"), "\(flag)")
            for name in [
                "-dir", "-create", "-addr", "-shutdown-timeout", "-auth-token-file", "-repl-ack-timeout", "-repl-sync",
                "-request-timeout", "-idle-timeout", "-write-timeout",
            ] {
                #expect(output.split(separator: "\n").contains { $0.hasPrefix("  \(name) ") || $0 == "  \(name)" }, "usage lacks \(name)")
            }
        }
    }

    @Test func unknownFlagExits2NamingIt() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let result = try runServer(["-dir", root.file("data"), "-create", "-no-such-flag"], in: root)
        #expect(result.status == .exited(2))
        #expect(result.stderr.contains("flag provided but not defined: -no-such-flag"))
        #expect(!FileManager.default.fileExists(atPath: root.file("data")))
    }

    // 9999999999h: beyond Go's largest duration (about 292 years); it once trapped (exit 132).
    @Test(arguments: ["5x", "-1", "10", "1h1", "fast", "9999999999h", "2562048h"])
    func badDurationExits2(value: String) throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let result = try runServer(["-dir", root.file("data"), "-create", "-shutdown-timeout", value], in: root)
        #expect(result.status == .exited(2), "\(result.stderr)")
        #expect(result.stderr.contains("invalid value \"\(value)\" for flag -shutdown-timeout"))
    }

    @Test func unknownReplSyncModeExits2NamingIt() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let result = try runServer(["-dir", root.file("data"), "-create", "-repl-sync=bogus"], in: root)
        #expect(result.status == .exited(2), "\(result.stderr)")
        #expect(result.stderr.contains("invalid value \"bogus\" for flag -repl-sync: expected available or required"))
        #expect(!FileManager.default.fileExists(atPath: root.file("data")))
    }

    @Test(arguments: ["5x", "10"])
    func badAckTimeoutExits2(value: String) throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let result = try runServer(["-dir", root.file("data"), "-create", "-repl-ack-timeout", value], in: root)
        #expect(result.status == .exited(2), "\(result.stderr)")
        #expect(result.stderr.contains("invalid value \"\(value)\" for flag -repl-ack-timeout"))
    }

    @Test func missingDirFlagExits2() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let result = try runServer(["-create", "-addr", "127.0.0.1:0"], in: root)
        #expect(result.status == .exited(2))
        #expect(result.stderr.contains("-dir"))
        #expect(result.stderr.contains("required"))
    }

    @Test func missingDirectoryWithoutCreateExits1() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let missing = root.file("not-there")
        let result = try runServer(["-dir", missing, "-addr", "127.0.0.1:0"], in: root)
        #expect(result.status == .exited(1))
        #expect(result.stderr.contains("data directory \(missing) does not exist"))
        #expect(result.stderr.contains("-create"))
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    /// A second server on an address already in use must fail to start, as Go's does ("bind:
    /// address already in use"); otherwise the kernel splits the clients between two databases.
    @Test func secondServerOnTheSameAddressFailsToStart() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        // An explicit port, as an operator gives one (Linux does not let a socket join a port the
        // kernel picked for a bind to port 0, so -addr 127.0.0.1:0 would not test this).
        var started: ServerProcess?
        for attempt in 0..<3 where started == nil {
            started = try? ServerProcess(
                dataDirectory: root.file("first"), logPath: root.file("first-\(attempt).log"),
                arguments: ["-addr", "127.0.0.1:\(try RawConnection.freePort())"])
        }
        let first = try #require(started, "no free port for the first server")
        defer { first.killAndWait() }
        let secondLog = root.file("second.log")
        let pid = try ChildProcess.spawn(
            try builtExecutable("small_db_server"),
            ["-dir", root.file("second"), "-create", "-addr", "127.0.0.1:\(first.port)", "-repl-addr", "127.0.0.1:0"],
            stdout: secondLog + ".stdout", stderr: secondLog)
        var status: ExitStatus?
        let ended = Poll.until(timeout: .seconds(10)) {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = ExitStatus(waitStatus: raw)
                return true
            }
            return ChildProcess.readText(secondLog).contains("listening for HTTP")
        }
        if status == nil {
            kill(pid, SIGKILL)
            _ = ChildProcess.wait(pid, timeout: .seconds(5))
        }
        #expect(ended)
        #expect(status == .exited(1), "the second server started on port \(first.port); its log:\n\(ChildProcess.readText(secondLog))")
        #expect(ChildProcess.readText(secondLog).contains("cannot start the HTTP server"))
    }

    // MARK: Graceful shutdown

    /// SIGTERM while eight clients PUT as fast as they can and a ninth holds a response the server
    /// cannot finish sending (it stops reading): the listener closes at once, every PUT answered 200
    /// is durable, the stuck connection is given the grace period and then closed, and the process
    /// exits 0 with its shutdown logged.
    @Test func sigtermWithRequestsInFlightShutsDownGracefully() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let data = root.file("data")
        let shutdownTimeout: Duration = .seconds(2)
        let server = try ServerProcess(dataDirectory: data, logPath: root.file("server.log"), arguments: ["-shutdown-timeout", "2s"])
        defer { server.killAndWait() }

        // A 2 MiB value, asked for twice by a client that reads almost nothing: its answers
        // (5.6 MB, more than the socket buffers hold) cannot all be written, so the shutdown has
        // to wait for it. Both answers are built (the first leaves less than the 4 MiB at which
        // the connection stops reading), before the signal (the metrics count them), so that no
        // loop is still busy building them when the signal comes.
        let big = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let control = try RawConnection(port: server.port)
        #expect(try control.exchange(RawRequest.put("/v1/kv/big", value: big)).status == 200)
        let stuck = try RawConnection(port: server.port, receiveBufferSize: 4096)
        try stuck.send((0..<2).flatMap { _ in RawRequest.get("/v1/kv/big") })
        let answersBuilt = try Poll.until(timeout: .seconds(30)) {
            let metrics = try control.exchange(RawRequest.get("/metrics")).text
            return metricValue(metrics, #"smalldb_http_requests_total{route="kv",method="GET",status="200"}"#) == 2
        }
        #expect(answersBuilt, "the server did not answer the stuck client's GETs")
        control.close()

        let writers = ConcurrentWriters(writers: 8, prefix: "graceful")
        writers.start(port: server.port)
        defer { writers.stop(); _ = writers.join() }
        #expect(Poll.until(timeout: .seconds(20)) { writers.totalAcknowledged >= 200 }, "the writers did not get going")

        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        #expect(Poll.until(timeout: .seconds(5)) { server.log.contains("received SIGTERM") })
        // New connections are refused while the shutdown is still going on.
        var refusal: Int32 = 0
        #expect(Poll.until(timeout: .seconds(2)) {
            refusal = RawConnection.probe(port: server.port)
            return refusal == ECONNREFUSED
        }, "connections still accepted after SIGTERM (last errno \(refusal))")
        #expect(server.isRunning, "the server had already exited: nothing held its shutdown")

        let status = server.waitForExit(timeout: shutdownTimeout + .seconds(1) - (ContinuousClock.now - signalled))
        let exitedAfter = ContinuousClock.now - signalled
        #expect(status == .exited(0), "status \(status.map(\.description) ?? "still running") after \(exitedAfter); log:\n\(server.log)")
        #expect(exitedAfter >= shutdownTimeout - .milliseconds(100), "the stuck connection did not get its grace period")
        let log = server.log
        #expect(log.contains("received SIGTERM"))
        #expect(log.contains("stopped cleanly"))

        #expect(writers.join(), "writers still running after the server exited")
        #expect(writers.unexpectedAnswers.isEmpty, "\(writers.unexpectedAnswers)")
        stuck.close()

        let restarted = try ServerProcess(dataDirectory: data, logPath: root.file("server.log"), create: false)
        defer { restarted.killAndWait() }
        let mismatches = try writers.verify(port: restarted.port)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches: \(mismatches.prefix(5))")
        #expect(try RawConnection(port: restarted.port).exchange(RawRequest.get("/v1/kv/big")).text == getBody(jsonKey: "\"big\"", value: big))
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func idleServerStopsCleanlyOnSignal(signal: Int32) throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let server = try ServerProcess(dataDirectory: root.file("data"), logPath: root.file("server.log"))
        defer { server.killAndWait() }
        let idle = try RawConnection(port: server.port)
        #expect(try idle.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 200)
        server.signal(signal)
        // Well within the default 5 s grace period: the idle keep-alive connection does not hold
        // the shutdown.
        let status = server.waitForExit(timeout: .seconds(3))
        #expect(status == .exited(0))
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        #expect(server.log.contains("received \(name)"))
        #expect(server.log.contains("stopped cleanly"))
        #expect(try idle.readUntilClosed(timeout: .seconds(1)).isEmpty)
    }

    // MARK: kill -9

    /// Eight writers PUT their own keys in sequence; the server is killed with SIGKILL mid-stream
    /// and restarted on the same directory, three times. After each restart every acknowledged PUT
    /// of every round is there with its value, each writer's in-flight PUT is there or not, and
    /// nothing later is.
    @Test func everyAcknowledgedPutSurvivesSIGKILL() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let data = root.file("data")
        var random = SystemRandomNumberGenerator()
        var rounds: [ConcurrentWriters] = []
        for round in 0..<3 {
            let server = try ServerProcess(dataDirectory: data, logPath: root.file("server.log"), arguments: ["-checkpoint-updates", "150"])
            defer { server.killAndWait() }
            // The writers of the earlier rounds are all there after their kill.
            for earlier in rounds {
                let mismatches = try earlier.verify(port: server.port)
                #expect(mismatches.isEmpty, "round \(round): \(earlier.prefix): \(mismatches.prefix(5))")
            }
            let writers = ConcurrentWriters(writers: 8, prefix: "round\(round)")
            writers.start(port: server.port)
            defer { writers.stop(); _ = writers.join() }
            let killAfter = Int.random(in: 100...400, using: &random)
            #expect(Poll.until(timeout: .seconds(30)) { writers.totalAcknowledged >= killAfter }, "round \(round): writers stalled")
            server.killAndWait()
            #expect(server.exitStatus == .signaled(SIGKILL))
            #expect(writers.join(), "round \(round): writers still running after the kill")
            #expect(writers.unexpectedAnswers.isEmpty, "\(writers.unexpectedAnswers)")
            rounds.append(writers)
        }
        let server = try ServerProcess(dataDirectory: data, logPath: root.file("server.log"))
        defer { server.killAndWait() }
        for writers in rounds {
            let mismatches = try writers.verify(port: server.port)
            #expect(mismatches.isEmpty, "\(writers.prefix): \(mismatches.count) mismatches: \(mismatches.prefix(5))")
        }
    }
}
