#if canImport(Glibc)
import Glibc
#endif

/// One IPv4 or IPv6 socket address, ready for bind(2) or connect(2), or read back from a socket.
public struct SocketAddress: Sendable, CustomStringConvertible {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    /// AF_INET or AF_INET6.
    public var family: Int32 { Int32(storage.ss_family) }

    /// Every IPv6 interface ("::"): a dual-stack socket on it accepts IPv4 connections too.
    static func anyIPv6(port: UInt16) -> SocketAddress {
        var any = sockaddr_in6()
        any.sin6_family = sa_family_t(AF_INET6)
        any.sin6_port = port.bigEndian
        any.sin6_addr = in6addr_any
        return SocketAddress(copying: any)
    }

    /// Every IPv4 interface ("0.0.0.0"): the fallback where IPv6 sockets cannot be opened.
    static func anyIPv4(port: UInt16) -> SocketAddress {
        var any = sockaddr_in()
        any.sin_family = sa_family_t(AF_INET)
        any.sin_port = port.bigEndian
        any.sin_addr.s_addr = INADDR_ANY
        return SocketAddress(copying: any)
    }

    init(bytes: UnsafeRawPointer, length: socklen_t) {
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: bytes, count: Int(length))) }
        self.length = length
    }

    private init<Address>(copying address: Address) {
        withUnsafeMutableBytes(of: &storage) { storage in
            withUnsafeBytes(of: address) { storage.copyMemory(from: $0) }
        }
        length = socklen_t(MemoryLayout<Address>.size)
    }

    /// The local (`peer` false) or remote address of a socket; nil if the call fails.
    public init?(of descriptor: Int32, peer: Bool) {
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(descriptor, $0, &length) : getsockname(descriptor, $0, &length)
            }
        }
        guard status == 0 else { return nil }
        self.length = length
    }

    /// Calls `body` with the address as the sockets API takes it.
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(IOError) -> Result) throws(IOError) -> Result {
        var copy = storage
        let outcome: Swift.Result<Result, IOError> = withUnsafePointer(to: &copy) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                do throws(IOError) { return .success(try body(address, length)) } catch { return .failure(error) }
            }
        }
        return try outcome.get()
    }

    /// The port, in host byte order (sin_port and sin6_port sit at the same offset, 2).
    public var port: UInt16 {
        withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    }

    /// "192.0.2.1:9090" or "[2001:db8::1]:9090".
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var storage = storage
        let ip: String? = withUnsafeMutableBytes(of: &storage) { raw in
            switch family {
            case AF_INET: return inet_ntop(AF_INET, raw.baseAddress! + 4, &text, socklen_t(text.count)).map { String(cString: $0) }
            case AF_INET6: return inet_ntop(AF_INET6, raw.baseAddress! + 8, &text, socklen_t(text.count)).map { "[\(String(cString: $0))]" }
            default: return nil
            }
        }
        guard let ip else { return "?" }
        return "\(ip):\(port)"
    }
}
