import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// A listen address as the Go server's flags spell it: "host:port", ":port" (every interface),
/// "[::1]:port", "localhost:port". Port 0 asks the kernel for a free port (tests use it).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses "host:port". Nil if there is no port or it is not a number in 0…65535.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// A bound socket address (IPv4 or IPv6), ready for bind(2).
struct ResolvedAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 { Int32(storage.ss_family) }

    /// Resolves `address`: an empty host means every interface (IPv6 dual-stack, which also
    /// accepts IPv4); "localhost" and names go through getaddrinfo.
    static func resolve(_ address: ListenAddress) throws(ServerError) -> ResolvedAddress {
        var resolved = ResolvedAddress()
        if address.host.isEmpty {
            var any = sockaddr_in6()
            any.sin6_family = sa_family_t(AF_INET6)
            any.sin6_port = address.port.bigEndian
            any.sin6_addr = in6addr_any
            resolved.store(any)
            return resolved
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &results)
        guard status == 0, let first = results else {
            throw .addressResolution(address.description, String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(results) }
        withUnsafeMutableBytes(of: &resolved.storage) { storage in
            storage.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        resolved.length = first.pointee.ai_addrlen
        return resolved
    }

    private mutating func store<Address>(_ address: Address) {
        withUnsafeMutableBytes(of: &storage) { storage in
            withUnsafeBytes(of: address) { storage.copyMemory(from: $0) }
        }
        length = socklen_t(MemoryLayout<Address>.size)
    }

    /// The port of a bound socket (after binding to port 0).
    static func boundPort(of descriptor: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return withUnsafeBytes(of: storage) { raw in
            // sin_port and sin6_port sit at the same offset (2), in network byte order.
            UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        }
    }
}
