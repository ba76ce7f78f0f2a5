import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for the reactor's tests: real sockets, with a receive timeout so a
/// broken server fails a test instead of hanging it.
final class TestClient {
    let descriptor: Int32
    private var pending: [UInt8] = []

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects to 127.0.0.1:`port`. `receiveBufferSize` (set before connecting) makes a
    /// client that reads nothing take little of the server's output.
    init(port: UInt16, receiveBufferSize: Int32? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        if var size = receiveBufferSize {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw Failure(description: "connect: errno \(code)")
        }
    }

    deinit { Glibc.close(descriptor) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += count
        }
    }

    /// The next line, without its newline; nil at the end of input.
    func readLine() throws -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeFirst(newline + 1)
                return line
            }
            guard try fill() else { return nil }
        }
    }

    /// Everything until the server closes the connection.
    func readToEnd() throws -> String {
        while try fill() {}
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Reads more into `pending`; false at the end of input (or a reset).
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            pending.append(contentsOf: chunk[0..<count])
            return true
        }
        if count == 0 || errno == ECONNRESET { return false }
        throw Failure(description: "recv: errno \(errno) (a timeout is EAGAIN)")
    }
}

/// Waits until `condition` holds, checking every 5 ms, for at most `timeout`: a wait for a
/// state, never a measure of time. False if it never held.
func eventually(timeout: Duration = .seconds(20), _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}

/// Starts an echo server on 127.0.0.1 with an ephemeral port, runs `body`, shuts it down.
func withEchoServer(
    loops: Int = 1, front: EchoFront = EchoFront(), _ configure: (inout ConnectionPolicy) -> Void = { _ in },
    _ body: (ConnectionServer, UInt16) throws -> Void
) throws {
    var policy = ConnectionPolicy()
    configure(&policy)
    let server = ConnectionServer(loopCount: loops, policy: policy)
    try server.start(listeningOn: NetworkAddress(host: "127.0.0.1", port: 0), front: front)
    defer { server.shutdown(gracePeriod: .seconds(5)) }
    try body(server, server.port!)
}
