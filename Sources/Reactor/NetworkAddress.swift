/// A TCP address as Go's flags spell it: "host:port", ":port" (listening: every interface;
/// dialling: this machine), "[::1]:port", "localhost:port". Port 0 lets a listener take a free
/// port. The one parser for every front's and replication's addresses.
public struct NetworkAddress: Sendable, Equatable, CustomStringConvertible {
    /// A name, an IPv4 or IPv6 literal (without brackets), or empty.
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses "host:port" as Go's net.SplitHostPort does: an IPv6 host needs brackets
    /// ("::1:8080" is refused, as Go refuses it: which colon starts the port is a guess).
    public init(parsing text: String) throws(AddressError) {
        guard let colon = text.lastIndex(of: ":") else {
            throw AddressError(address: text, reason: "no port (want host:port)")
        }
        guard let port = UInt16(text[text.index(after: colon)...]) else {
            throw AddressError(address: text, reason: "no port number in 0…65535")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") || host.contains("[") || host.contains("]") {
            throw AddressError(address: text, reason: "an IPv6 host needs brackets, as in [::1]:\(port)")
        }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
