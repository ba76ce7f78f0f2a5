import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// A TCP address as Go spells it: "host:port", ":port" (listen: every interface; dial: this
/// machine), "[::1]:port", "localhost:port". Port 0 lets a listener take a free port.
struct TransportAddress: CustomStringConvertible {
    var host: String
    var port: UInt16

    init(parsing text: String) throws(TransportError) {
        guard let colon = text.lastIndex(of: ":") else { throw .invalidAddress("\"\(text)\" has no port (want host:port)") }
        guard let port = UInt16(text[text.index(after: colon)...]) else {
            throw .invalidAddress("\"\(text)\" has no port number in 0…65535")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw .invalidAddress("\"\(text)\": an IPv6 host needs brackets, as in [::1]:\(port)")
        }
        self.host = host
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The socket addresses `host` names (for a listener, `passive`: addresses to bind). Calls
    /// `body` with each until it returns a value; throws what the last one threw.
    func withEachResolved<Result>(
        passive: Bool, _ body: (UnsafePointer<sockaddr>, socklen_t, Int32) throws(TransportError) -> Result
    ) throws(TransportError) -> Result {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &results)
        guard status == 0, let first = results else {
            throw .invalidAddress("\(description): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(results) }
        var lastError = TransportError.invalidAddress("\(description) resolves to no address")
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let address = current.pointee.ai_addr {
                do {
                    return try body(address, current.pointee.ai_addrlen, current.pointee.ai_family)
                } catch {
                    lastError = error
                }
            }
            entry = current.pointee.ai_next
        }
        throw lastError
    }
}

/// "192.0.2.1:9090" or "[2001:db8::1]:9090" for a socket's local or remote address.
func socketAddressText(of descriptor: Int32, peer: Bool) -> String {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let status = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            peer ? getpeername(descriptor, $0, &length) : getsockname(descriptor, $0, &length)
        }
    }
    guard status == 0 else { return "?" }
    return socketAddressText(storage)
}

func socketAddressText(_ storage: sockaddr_storage) -> String {
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
    var storage = storage
    switch Int32(storage.ss_family) {
    case AF_INET:
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                var ip = address.pointee.sin_addr
                inet_ntop(AF_INET, &ip, &text, socklen_t(text.count))
                return "\(cText(text)):\(UInt16(bigEndian: address.pointee.sin_port))"
            }
        }
    case AF_INET6:
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                var ip = address.pointee.sin6_addr
                inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count))
                return "[\(cText(text))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
            }
        }
    default:
        return "?"
    }
}

/// The bound port of a socket.
func boundPort(of descriptor: Int32) -> Int {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return withUnsafeBytes(of: storage) { raw in
        // sin_port and sin6_port sit at the same offset (2), in network byte order.
        Int(UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    }
}

/// A NUL-terminated C string held in an array.
private func cText(_ characters: [CChar]) -> String {
    characters.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
