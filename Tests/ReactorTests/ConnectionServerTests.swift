import Platform
@testable import Reactor
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The connection lifecycle, with the echo protocol: placement, the cap, each timeout,
/// back-pressure and refused registrations. Every assertion is on state the reactor reaches,
/// awaited with `eventually`; none measures time.
@Suite struct ConnectionServerTests {
    @Test func pipelinedLinesAreAnsweredInOrder() throws {
        try withEchoServer { _, port in
            let client = try TestClient(port: port)
            try client.send("one\ntwo\nthree\n")
            #expect(try client.readLine() == "one")
            #expect(try client.readLine() == "two")
            #expect(try client.readLine() == "three")
        }
    }

    /// Four clients on two loops: each connection goes to the loop that owns the fewest.
    @Test func connectionsArePlacedOnTheLeastLoadedLoop() throws {
        try withEchoServer(loops: 2) { server, port in
            var clients: [TestClient] = []
            for index in 0..<4 {
                let client = try TestClient(port: port)
                try client.send("hello \(index)\n")
                #expect(try client.readLine() == "hello \(index)")  // adopted and serving
                clients.append(client)
            }
            #expect(server.inspectConnections { $0.count } == [2, 2])
            #expect(server.counters.perLoop.map { $0.value.load(ordering: .relaxed) } == [2, 2])
            #expect(server.counters.open.load(ordering: .relaxed) == 4)
        }
    }

    @Test func aConnectionOverTheCapIsSentTheRejectionAndClosed() throws {
        try withEchoServer({ $0.maxConnections = 2 }) { server, port in
            let first = try TestClient(port: port)
            let second = try TestClient(port: port)
            for client in [first, second] {
                try client.send("ping\n")
                #expect(try client.readLine() == "ping")
            }
            let third = try TestClient(port: port)
            #expect(try third.readToEnd() == "full 2\n")
            #expect(server.counters.rejected.load(ordering: .relaxed) == 1)
            #expect(server.counters.open.load(ordering: .relaxed) == 2)
            try first.send("still here\n")
            #expect(try first.readLine() == "still here")
        }
    }

    @Test func anIdleConnectionIsClosedByTheIdleTimeout() throws {
        try withEchoServer({ $0.idleTimeout = .milliseconds(300) }) { server, port in
            let client = try TestClient(port: port)
            try client.send("ping\n")
            #expect(try client.readLine() == "ping")
            #expect(try client.readToEnd() == "")  // the server closed it
            #expect(server.counters.timedOut.load(ordering: .relaxed) == 1)
        }
    }

    @Test func aPartialMessageIsAnsweredAndClosedByTheReadTimeout() throws {
        try withEchoServer({ $0.messageReadTimeout = .milliseconds(300) }) { server, port in
            let client = try TestClient(port: port)
            try client.send("ping\npar")
            #expect(try client.readLine() == "ping")
            #expect(try client.readToEnd() == "timeout\n")
            #expect(server.counters.timedOut.load(ordering: .relaxed) == 1)
        }
    }

    /// A client that sends many requests for large answers and reads none: the connection stops
    /// reading once `maxBufferedOutput` bytes wait (so it holds at most that plus one answer,
    /// whatever it was sent), and the write timeout closes it once the kernel takes no more.
    @Test func aClientThatNeverReadsPausesReadingAndIsClosedByTheWriteTimeout() throws {
        let answer = 256 << 10
        try withEchoServer(front: EchoFront(bigAnswerSize: answer), {
            $0.maxBufferedOutput = 1 << 20
            $0.writeTimeout = .seconds(1)
            $0.idleTimeout = .zero
        }) { server, port in
            let client = try TestClient(port: port, receiveBufferSize: 4096)
            try client.send(String(repeating: "big\n", count: 2000))
            struct State: Sendable { var paused: Bool; var waiting: Int; var answered: Int }
            var seen: State?
            let paused = eventually {
                seen = server.inspectConnections { connections in
                    connections.first.map { State(paused: $0.isReadingPaused, waiting: $0.answerBytesWaiting, answered: ($0.handler as? EchoHandler)?.answered ?? 0) }
                }.first ?? nil
                return seen?.paused == true
            }
            #expect(paused)
            if let seen {
                #expect(seen.waiting <= (1 << 20) + answer, "\(seen.waiting) answer bytes held for a client that reads nothing")
                #expect(seen.answered < 2000)
            }
            #expect(eventually { server.counters.writeTimedOut.load(ordering: .relaxed) == 1 })
            #expect(eventually { server.counters.open.load(ordering: .relaxed) == 0 })
        }
    }

    /// epoll refuses the listener's registration (injected, as ENOSPC at the watch limit): the
    /// failure is counted and logged, retried on each tick, and the loop accepts once it works.
    @Test func aRefusedListenerRegistrationIsCountedLoggedAndRetried() throws {
        let logged = Lock<[String]>([])
        try withEchoServer({
            $0.listenerWatchFaults = RegistrationFaults(count: 2)
            $0.log = { line in logged.withLock { $0.append(line) } }
        }) { server, port in
            let client = try TestClient(port: port)  // queued in the backlog until a retry works
            try client.send("ping\n")
            #expect(try client.readLine() == "ping")
            #expect(server.counters.listenerWatchFailures.load(ordering: .relaxed) == 2)
            #expect(logged.withLock { $0.contains { $0.contains("cannot watch the listening socket") && $0.contains("errno \(ENOSPC)") } })
        }
    }

    /// epoll refuses to change a connection's events ("bye" stops reading, which changes
    /// them): the connection is closed, counted and logged; the server goes on serving.
    @Test func aRefusedEventChangeClosesTheConnectionAndIsCounted() throws {
        let logged = Lock<[String]>([])
        try withEchoServer({
            $0.connectionWatchFaults = RegistrationFaults(count: 1, errno: ENOMEM)
            $0.log = { line in logged.withLock { $0.append(line) } }
        }) { server, port in
            let client = try TestClient(port: port)
            try client.send("bye\n")
            _ = try client.readToEnd()
            #expect(eventually { server.counters.connectionWatchFailures.load(ordering: .relaxed) == 1 })
            #expect(logged.withLock { $0.contains { $0.contains("cannot change the events watched") } })
            let next = try TestClient(port: port)
            try next.send("bye\n")
            #expect(try next.readToEnd() == "bye\n")  // the next change works: answered, then closed
        }
    }

    /// A graceful shutdown answers what was read, then closes every connection.
    @Test func shutdownClosesEveryConnection() throws {
        var policy = ConnectionPolicy()
        policy.idleTimeout = .zero
        let server = ConnectionServer(loopCount: 2, policy: policy)
        try server.start(listeningOn: NetworkAddress(host: "127.0.0.1", port: 0), front: EchoFront())
        let clients = try (0..<3).map { _ in try TestClient(port: server.port!) }
        for client in clients {
            try client.send("ping\n")
            #expect(try client.readLine() == "ping")
        }
        server.shutdown(gracePeriod: .seconds(5))
        for client in clients { #expect(try client.readToEnd() == "") }
        #expect(server.counters.open.load(ordering: .relaxed) == 0)
    }
}
