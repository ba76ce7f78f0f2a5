#if canImport(Glibc)
import Glibc
#endif

/// Turns a `NetworkAddress` into the socket addresses to try, in order: the one resolver for
/// listening and dialling.
///
/// - Listening on an empty host ("every interface"): IPv6's "::" first (dual stack, so IPv4
///   clients connect too, as Go's ":port" does), then IPv4's "0.0.0.0", which a listener falls
///   back to when IPv6 sockets cannot be opened (a kernel or namespace without IPv6).
/// - Anything else goes through getaddrinfo (numeric ports only); a dial to an empty host
///   resolves to this machine's loopback addresses, as Go's does.
public enum AddressResolver {
    public static func resolve(_ address: NetworkAddress, forListening: Bool) throws(AddressError) -> [SocketAddress] {
        if forListening && address.host.isEmpty {
            return [.anyIPv6(port: address.port), .anyIPv4(port: address.port)]
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (forListening ? AI_PASSIVE : 0)
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host.isEmpty ? nil : address.host, String(address.port), &hints, &results)
        guard status == 0, let first = results else {
            throw AddressError(address: address.description, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(results) }
        var addresses: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let raw = current.pointee.ai_addr, current.pointee.ai_family == AF_INET || current.pointee.ai_family == AF_INET6 {
                addresses.append(SocketAddress(bytes: raw, length: current.pointee.ai_addrlen))
            }
            entry = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw AddressError(address: address.description, reason: "resolves to no address") }
        return addresses
    }
}
