import CLinuxShims
import Platform
#if canImport(Glibc)
import Glibc
#endif

/// Reading, writing and waiting on a socket, with errno turned into the cases callers act on.
/// EINTR is retried here, so no caller sees it.
public enum SocketIO {
    public enum ReadOutcome: Equatable {
        /// This many bytes (at least 1) were read.
        case bytes(Int)
        /// The peer finished sending.
        case endOfInput
        /// Nothing to read now (a non-blocking socket).
        case wouldBlock
        /// The peer reset the connection.
        case peerGone
        case failed(IOError)
    }

    public enum WriteOutcome: Equatable {
        /// This many bytes (at least 1) were taken by the kernel.
        case wrote(Int)
        /// The kernel's send buffer is full (a non-blocking socket).
        case wouldBlock
        /// The peer is gone (EPIPE, ECONNRESET).
        case peerGone
        case failed(IOError)
    }

    public enum WaitOutcome: Equatable {
        case ready
        case timedOut
        case failed(IOError)
    }

    public enum Readiness {
        case readable
        case writable
    }

    public static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        while true {
            let count = recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if count > 0 { return .bytes(count) }
            if count == 0 { return buffer.isEmpty ? .bytes(0) : .endOfInput }
            let code = Errno.current
            if Errno.isInterrupted(code) { continue }
            if Errno.isWouldBlock(code) { return .wouldBlock }
            if Errno.isPeerGone(code) { return .peerGone }
            return .failed(IOError("recv", code: code))
        }
    }

    /// Writes what the kernel takes now (MSG_NOSIGNAL: a closed peer is an outcome, not SIGPIPE).
    public static func write(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> WriteOutcome {
        while true {
            let count = send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return .wrote(count) }
            let code = Errno.current
            if Errno.isInterrupted(code) { continue }
            if Errno.isWouldBlock(code) { return .wouldBlock }
            if Errno.isPeerGone(code) { return .peerGone }
            return .failed(IOError("send", code: code))
        }
    }

    /// Waits in poll(2) until the socket is ready or `deadline` (nil: no deadline) passes.
    public static func wait(_ descriptor: Int32, for readiness: Readiness, until deadline: ContinuousClock.Instant?) -> WaitOutcome {
        let events = Int16(readiness == .readable ? POLLIN : POLLOUT)
        while true {
            var poller = pollfd(fd: descriptor, events: events, revents: 0)
            let timeout = deadline.map { max(.zero, ContinuousClock.now.duration(to: $0)).pollMilliseconds } ?? -1
            let ready = poll(&poller, 1, timeout)
            if ready > 0 { return .ready }
            if ready < 0 {
                let code = Errno.current
                if Errno.isInterrupted(code) { continue }
                return .failed(IOError("poll", code: code))
            }
            if let deadline, ContinuousClock.now >= deadline { return .timedOut }
        }
    }

    /// Shuts down the sending side (the peer reads the end of input once what was sent arrives).
    public static func shutdownSending(_ descriptor: Int32) { shutdown(descriptor, Int32(SHUT_WR)) }

    /// Shuts down both sides: wakes every thread blocked in poll, recv, send or accept on it.
    public static func shutdownBoth(_ descriptor: Int32) { shutdown(descriptor, Int32(SHUT_RDWR)) }

    public static func close(_ descriptor: Int32) { _ = Glibc.close(descriptor) }
}
