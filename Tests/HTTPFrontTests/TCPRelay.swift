import Foundation
import Platform
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay for the network fault tests: listens on 127.0.0.1 (port chosen by the kernel) in
/// one network namespace, and forwards each connection it accepts to `host`:`port`, connecting
/// from another (or the same) namespace. Two uses:
/// - reaching a server's HTTP port inside a namespace from the tests' own (`NamespaceEnd.forward`);
/// - delaying the replication link (`delay`): each piece read is sent on after a random delay in
///   the range, never before the piece ahead of it (TCP's order is kept), and reading goes on while
///   pieces wait, so the delay is latency, not a bandwidth limit. (This machine's kernel has no
///   netem; nftables makes the loss.)
///
/// Steps of one connection: accept; connect to the target from the target namespace (2 s at most:
/// a partitioned link must not hold the thread for TCP's minutes of SYN retries); then one thread
/// per direction reads, queues and sends. The end of one direction (EOF, a reset) is passed on
/// (shutdown for writing after the queued pieces); a failure shuts both sockets down. Each
/// connection's sockets are closed when both directions have ended. `stop()` closes the listener
/// and shuts every open connection down.
final class TCPRelay: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let targetNamespace: String?
    private let host: String
    private let targetPort: UInt16
    private struct State {
        var delayMilliseconds: ClosedRange<Int>?
        var open: Set<Int32> = []
        var isStopping = false
        var threadsRunning = 0
        var accepted = 0
    }
    private let state = Lock(State())

    init(listenIn listenNamespace: String?, connectIn targetNamespace: String?, to host: String, port targetPort: UInt16) throws {
        self.targetNamespace = targetNamespace
        self.host = host
        self.targetPort = targetPort
        let (listener, port) = try TCPRelay.inNamespace(listenNamespace) { try TCPRelay.listen() }
        self.listener = listener
        self.port = port
        startThread { [self] in acceptLoop() }
    }

    /// Delay each piece by a random number of milliseconds in `range` (nil: no delay).
    func setDelay(milliseconds range: ClosedRange<Int>?) {
        state.withLock { $0.delayMilliseconds = range }
    }

    /// Connections accepted so far (only grows).
    var acceptedConnections: Int { state.withLock { $0.accepted } }

    func stop() {
        let open = state.withLock { state -> Set<Int32> in
            state.isStopping = true
            return state.open
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
        _ = Poll.until(timeout: .seconds(10)) { state.withLock { $0.threadsRunning == 0 } }
        close(listener)
    }

    // MARK: Threads

    private func startThread(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.threadsRunning += 1 }
        Thread { [self] in
            body()
            state.withLock { $0.threadsRunning -= 1 }
        }.start()
    }

    /// Runs `body` on a fresh thread inside `namespace` (nil: on the calling thread) and returns
    /// its result: the sockets it makes belong to that namespace for good.
    static func inNamespace<T: Sendable>(_ namespace: String?, _ body: @escaping @Sendable () throws -> T) throws -> T {
        guard let namespace else { return try body() }
        let result = Lock<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.withLock { $0 = Result { try NamespaceSwitch.enter(namespace); return try body() } }
            done.signal()
        }.start()
        done.wait()
        return try result.withLock { $0! }.get()
    }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // the listener was shut down (stop)
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)  // never inherited by a server spawned meanwhile
            var on: Int32 = 1  // no Nagle on either leg: the servers' own sockets have none
            setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            let admitted = state.withLock { state -> Bool in
                guard !state.isStopping else { return false }
                state.open.insert(connection)
                state.accepted += 1
                return true
            }
            guard admitted else {
                close(connection)
                return
            }
            startThread { [self] in relay(connection) }
        }
    }

    private func relay(_ client: Int32) {
        let target: Int32
        do {
            target = try TCPRelay.inNamespace(targetNamespace) { [host, targetPort] in
                try TCPRelay.connect(host: host, port: targetPort, timeout: .seconds(2))
            }
        } catch {
            finish([client])
            return
        }
        let admitted = state.withLock { state -> Bool in
            guard !state.isStopping else { return false }
            state.open.insert(target)
            return true
        }
        guard admitted else {
            close(target)
            finish([client])
            return
        }
        let directionsLeft = Atomic<Int>(2)
        let end: @Sendable () -> Void = { [self] in
            if directionsLeft.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finish([client, target]) }
        }
        startThread { [self] in
            pump(from: target, to: client)
            end()
        }
        pump(from: client, to: target)
        end()
    }

    private func finish(_ descriptors: [Int32]) {
        state.withLock { state in for descriptor in descriptors { state.open.remove(descriptor) } }
        for descriptor in descriptors { close(descriptor) }
    }

    /// One direction: read pieces from `source`, send each on to `destination` once its delay has
    /// passed. At EOF: send what is queued, then shut `destination` down for writing; on a failure
    /// shut both down.
    private func pump(from source: Int32, to destination: Int32) {
        var queue: [(due: ContinuousClock.Instant, bytes: [UInt8])] = []
        var lastDue = ContinuousClock.now
        var sourceOpen = true
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while sourceOpen || !queue.isEmpty {
            let now = ContinuousClock.now
            while let first = queue.first, first.due <= now {
                guard TCPRelay.sendAll(destination, first.bytes) else {
                    shutdown(source, Int32(SHUT_RDWR))
                    shutdown(destination, Int32(SHUT_RDWR))
                    return
                }
                queue.removeFirst()
            }
            guard sourceOpen else {
                if let first = queue.first, first.due > ContinuousClock.now { Poll.pause(first.due - ContinuousClock.now) }
                continue
            }
            let wait = queue.first.map { max(0, ($0.due - ContinuousClock.now).milliseconds + 1) } ?? -1
            var watched = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            let ready = poll(&watched, 1, Int32(clamping: wait))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                let delay = state.withLock { $0.delayMilliseconds }.map { Duration.milliseconds(Int.random(in: $0)) } ?? .zero
                lastDue = max(lastDue, ContinuousClock.now + delay)
                queue.append((lastDue, Array(chunk[0..<count])))
            } else if count == 0 {
                sourceOpen = false
            } else if errno != EINTR && errno != EAGAIN {
                shutdown(source, Int32(SHUT_RDWR))
                shutdown(destination, Int32(SHUT_RDWR))
                return
            }
        }
        shutdown(destination, Int32(SHUT_WR))
    }

    // MARK: Sockets

    private static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    private static func address(_ host: String, _ port: UInt16) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw TestFailure("not an IPv4 address: \(host)") }
        return address
    }

    /// A listening socket on 127.0.0.1, port chosen by the kernel.
    private static func listen() throws -> (Int32, UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = try address("127.0.0.1", 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && Glibc.listen(descriptor, 128) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else {
            let code = errno
            close(descriptor)
            throw TestFailure("relay listen on 127.0.0.1:0: errno \(code)")
        }
        return (descriptor, UInt16(bigEndian: address.sin_port))
    }

    /// A connected, blocking socket to `host`:`port` (non-blocking only while connecting, so that
    /// the connect is bounded by `timeout`).
    private static func connect(host: String, port: UInt16, timeout: Duration) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        var address = try address(host, port)
        let started = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 ? 0 : errno
            }
        }
        var failure = started
        if started == EINPROGRESS {
            var watched = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            if poll(&watched, 1, Int32(timeout.milliseconds)) == 1 {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
                failure = code
            } else {
                failure = ETIMEDOUT
            }
        }
        guard failure == 0 else {
            close(descriptor)
            throw TestFailure("relay connect to \(host):\(port): errno \(failure)")
        }
        _ = fcntl(descriptor, F_SETFL, flags)
        return descriptor
    }
}
