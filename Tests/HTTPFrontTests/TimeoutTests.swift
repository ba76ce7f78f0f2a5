import Foundation
import HTTPFront
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The request-read and idle timeouts, with an in-process server configured with 1-second
/// timeouts. The loops check timeouts on a 250 ms tick, so a timeout fires between its time and
/// about a quarter second later; the bounds below allow for a loaded machine.
@Suite("Timeouts")
struct TimeoutTests {
    static let timeout: Duration = .seconds(1)
    /// The latest a timeout may fire after it is due: the tick, plus scheduling slack.
    static let slack: Duration = .milliseconds(1500)

    private static func shortTimeouts(_ configuration: inout HTTPServerConfiguration) {
        configuration.requestReadTimeout = TimeoutTests.timeout
        configuration.idleTimeout = .seconds(30)
    }

    private func expectCutOffInTime(_ elapsed: Duration, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(elapsed >= TimeoutTests.timeout - .milliseconds(50), "cut off early, after \(elapsed)", sourceLocation: sourceLocation)
        #expect(elapsed <= TimeoutTests.timeout + TimeoutTests.slack, "cut off late, after \(elapsed)", sourceLocation: sourceLocation)
    }

    @Test func stalledRequestBodyIsAnswered408AndCutOff() throws {
        try withServer(TimeoutTests.shortTimeouts) { server in
            let connection = try server.connect()
            let started = ContinuousClock.now
            try connection.send("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"val")
            let response = try connection.readResponse(timeout: .seconds(5))
            #expect(response.status == 408)
            #expect(response.announcesClose)
            #expect(response.header("Content-Type") == "application/json")
            #expect(try connection.readUntilClosed(timeout: .seconds(2)).isEmpty)
            expectCutOffInTime(ContinuousClock.now - started)
            #expect(try server.exchange(RawRequest.get("/v1/kv/a")).status == 404)
        }
    }

    @Test func stalledRequestHeadIsAnswered408AndCutOff() throws {
        try withServer(TimeoutTests.shortTimeouts) { server in
            let connection = try server.connect()
            let started = ContinuousClock.now
            try connection.send("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Half")
            let response = try connection.readResponse(timeout: .seconds(5))
            #expect(response.status == 408)
            #expect(try connection.readUntilClosed(timeout: .seconds(2)).isEmpty)
            expectCutOffInTime(ContinuousClock.now - started)
        }
    }

    /// A slowloris: one header byte every 150 ms, so the connection is never silent for long,
    /// but the request never completes. It is cut off once the request-read timeout has passed
    /// since its first byte.
    @Test func slowlorisSendingOneByteAtATimeIsCutOff() throws {
        try withServer(TimeoutTests.shortTimeouts) { server in
            let connection = try server.connect()
            let started = ContinuousClock.now
            try connection.send("GET /v1/health HTTP/1.1\r\nX-Slow: ")
            var bytesDribbled = 0
            while ContinuousClock.now - started < .seconds(6) {
                // Stop sending as soon as the server has answered or closed.
                var watched = pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)
                if poll(&watched, 1, 150) != 0 { break }
                guard (try? connection.send("z")) != nil else { break }
                bytesDribbled += 1
            }
            let cutOffAfter = ContinuousClock.now - started
            #expect(bytesDribbled >= 4, "the client was cut off before it had dribbled for a while")
            let response = try connection.readResponse(timeout: .seconds(2))
            #expect(response.status == 408)
            #expect(try connection.readUntilClosed(timeout: .seconds(2)).isEmpty)
            expectCutOffInTime(cutOffAfter)
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() throws {
        try withServer({ $0.idleTimeout = TimeoutTests.timeout }) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
            let idleSince = ContinuousClock.now
            // Closed without a response (nothing was asked).
            #expect(try connection.readUntilClosed(timeout: .seconds(5)).isEmpty)
            expectCutOffInTime(ContinuousClock.now - idleSince)
        }
    }

    @Test func connectionThatNeverSendsIsClosedAfterTheIdleTimeout() throws {
        try withServer({ $0.idleTimeout = TimeoutTests.timeout }) { server in
            let started = ContinuousClock.now
            let connection = try server.connect()
            #expect(try connection.readUntilClosed(timeout: .seconds(5)).isEmpty)
            expectCutOffInTime(ContinuousClock.now - started)
        }
    }

    /// The idle timeout counts from the last request, not from the connection's start.
    @Test func busyKeepAliveConnectionIsNotClosed() throws {
        try withServer({ $0.idleTimeout = TimeoutTests.timeout }) { server in
            let connection = try server.connect()
            let started = ContinuousClock.now
            var requests = 0
            while ContinuousClock.now - started < .milliseconds(1800) {
                #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
                requests += 1
                Poll.pause(.milliseconds(300))
            }
            #expect(requests >= 5)
        }
    }

    /// Each request on a keep-alive connection has the whole timeout from its own first byte.
    /// Here request 1 arrives slowly (1.4 s, within the 2 s timeout) and request 2 starts in the
    /// same packet that ends request 1; request 2 ends 1.2 s later, also well within its timeout.
    @Test
    func requestReadTimeoutRestartsForEachPipelinedRequest() throws {
        try withServer({ $0.requestReadTimeout = .seconds(2); $0.idleTimeout = .seconds(30) }) { server in
            let connection = try server.connect()
            try connection.send("GET /v1/health HTTP/1.1\r\n")
            Poll.pause(.milliseconds(1400))
            try connection.send("\r\nGET /v1/role HTTP/1.1\r\n")
            #expect(try connection.readResponse().status == 200)
            Poll.pause(.milliseconds(1200))
            try connection.send("\r\n")
            let second = try connection.readResponse()
            #expect(second.status == 200, "\(second)")
            #expect(second.text == "{\"role\":\"primary\",\"writable\":true}\n")
        }
    }
}
