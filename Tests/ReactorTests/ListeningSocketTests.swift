@testable import Reactor
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ListeningSocketTests {
    /// A machine whose IPv6 sockets fail to open (EAFNOSUPPORT): listening on every interface
    /// falls back to IPv4's 0.0.0.0, and IPv4 clients connect.
    @Test func everyInterfaceFallsBackToIPv4WhenIPv6SocketsFailToOpen() throws {
        var families: [Int32] = []
        let listener = try ListeningSocket.open(NetworkAddress(host: "", port: 0), backlog: 16) { (family) throws(IOError) -> Int32 in
            families.append(family)
            if family == AF_INET6 { throw IOError("socket", code: EAFNOSUPPORT) }
            return try TCPSocket.open(family: family)
        }
        defer { listener.close() }
        #expect(families == [AF_INET6, AF_INET])
        #expect(listener.localAddress.family == AF_INET)
        #expect(listener.localAddress.description == "0.0.0.0:\(listener.port)")
        let client = try TestClient(port: listener.port)
        _ = client
        #expect(eventually { if case .accepted(let connection) = listener.accept() { close(connection); return true } else { return false } })
    }

    /// With IPv6, every interface is one dual-stack socket on "::", which IPv4 clients reach.
    @Test func everyInterfaceIsDualStackWhereIPv6Works() throws {
        let listener = try ListeningSocket.open(NetworkAddress(host: "", port: 0))
        defer { listener.close() }
        // IPv6 works here if a socket can be opened and bound to "::" (a kernel with IPv6
        // disabled by sysctl opens the socket but refuses the bind).
        let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        var any = sockaddr_in6()
        any.sin6_family = sa_family_t(AF_INET6)
        any.sin6_addr = in6addr_any
        let hasIPv6 = probe >= 0 && withUnsafePointer(to: &any) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
        }
        if probe >= 0 { close(probe) }
        #expect(listener.localAddress.family == (hasIPv6 ? AF_INET6 : AF_INET))
        let client = try TestClient(port: listener.port)
        _ = client
        #expect(eventually { if case .accepted(let connection) = listener.accept() { close(connection); return true } else { return false } })
    }

    /// A port in use is final: no other family is tried, and the error says what failed.
    @Test func aPortInUseIsNotRetriedOnAnotherFamily() throws {
        let first = try ListeningSocket.open(NetworkAddress(host: "127.0.0.1", port: 0))
        defer { first.close() }
        var attempts = 0
        #expect {
            _ = try ListeningSocket.open(NetworkAddress(host: "", port: first.port), backlog: 16) { (family) throws(IOError) -> Int32 in
                attempts += 1
                return try TCPSocket.open(family: family)
            }
        } throws: { error in
            guard case .system(let failure, _) = error as? ListenError else { return false }
            return failure.code == EADDRINUSE && failure.operation.hasPrefix("bind")
        }
        #expect(attempts == 1)
    }

    @Test func anUnresolvableHostIsAnAddressError() {
        #expect {
            _ = try ListeningSocket.open(NetworkAddress(host: "no.such.host.invalid", port: 0))
        } throws: { error in
            if case .address = error as? ListenError { true } else { false }
        }
    }
}

@Suite struct NetworkAddressTests {
    @Test(arguments: [
        (":8080", "", UInt16(8080)), ("127.0.0.1:0", "127.0.0.1", 0), ("[::1]:9090", "::1", 9090),
        ("localhost:65535", "localhost", 65535), ("[]:1", "", 1),
    ])
    func parsesGoSyntax(text: String, host: String, port: UInt16) throws {
        let address = try NetworkAddress(parsing: text)
        #expect(address.host == host)
        #expect(address.port == port)
    }

    @Test(arguments: ["nonsense", "host:port", "127.0.0.1:99999", "::1:9090", "[::1:9090", "::1]:9090", "host:-1"])
    func refusesWhatGoRefuses(text: String) {
        #expect(throws: AddressError.self) { try NetworkAddress(parsing: text) }
    }

    @Test func describesIPv6WithBrackets() {
        #expect(NetworkAddress(host: "::1", port: 80).description == "[::1]:80")
        #expect(NetworkAddress(host: "", port: 80).description == ":80")
    }
}
