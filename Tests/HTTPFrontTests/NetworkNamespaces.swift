import Foundation
import Platform
#if canImport(Glibc)
import Glibc
#endif

// Two network namespaces joined by one veth pair, for the network fault tests
// (NetworkFaultTests.swift): a real TCP link between two small_db_server processes that nftables
// rules inside the namespaces can cut (a partition) or make lossy, and that a relay can delay.
//
//   namespace <name>-a                         namespace <name>-b
//   lo 127.0.0.1 (HTTP of server A)            lo 127.0.0.1 (HTTP of server B)
//   veth0 10.77.0.1/24  <-- the link -->       veth0 10.77.0.2/24
//
// Nothing is added to the tests' own namespace: each namespace is private, so every pair can use
// the same addresses and fixed replication ports, and pairs of tests running in parallel never
// meet. The tests reach a server's HTTP port through a `TCPRelay` in their own namespace whose
// outgoing sockets are made inside the server's namespace (setns(2) on the relay's thread).
// Commands run through posix_spawn (`ChildProcess.run`), never a shell. The names are unique per
// pair (a random suffix); `remove()` deletes both namespaces, which deletes the veth pair with
// them; call it in a `defer`, after the servers are killed.

/// The network namespace of a thread: setns(2) through dlsym (Swift's Glibc module does not export
/// it), and CLONE_NEWNET, wrapped once here.
enum NamespaceSwitch {
    private static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET, <linux/sched.h>
    private static let setnsFunction: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// Moves the calling thread into the network namespace `name` (/run/netns/`name`) for good:
    /// call it only on a thread of one's own, never on a thread of a shared pool.
    static func enter(_ name: String) throws {
        guard let setns = setnsFunction else { throw TestFailure("setns is not available") }
        let descriptor = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TestFailure("open /run/netns/\(name): errno \(errno)") }
        defer { close(descriptor) }
        guard setns(descriptor, cloneNewNet) == 0 else { throw TestFailure("setns \(name): errno \(errno)") }
    }
}

/// The two namespaces and their link. `a` and `b` are the two ends, each a `ServerPlacement`.
final class NamespacePair: @unchecked Sendable {
    let name: String
    let a: NamespaceEnd
    let b: NamespaceEnd
    private let scratch: TemporaryDirectory
    private var created: [String] = []

    /// Why these tests cannot run here (nil: they can): not root, `ip` or `nft` missing, or a
    /// namespace where nftables does not work. Checked once, with a namespace of its own.
    static let unavailableReason: String? = {
        guard geteuid() == 0 else { return "skipped: network namespaces need root (these tests run as root in CI)" }
        for tool in [NamespacePair.ip, NamespacePair.nft] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "skipped: \(tool) is not installed (apt-get install -y iproute2 nftables)"
        }
        do {
            let probe = try NamespacePair(linked: false)
            defer { probe.remove() }
            try probe.run(NamespacePair.ip, ["netns", "exec", probe.a.namespace, NamespacePair.nft, "add", "table", "inet", "probe"])
            return nil
        } catch {
            return "skipped: network namespaces with nftables do not work here: \(error)"
        }
    }()

    static let ip = "/usr/sbin/ip"
    static let nft = "/usr/sbin/nft"
    static let addressA = "10.77.0.1"
    static let addressB = "10.77.0.2"

    /// Creates both namespaces (and, if `linked`, the veth pair with its addresses, everything up).
    init(linked: Bool = true) throws {
        scratch = try TemporaryDirectory()
        name = "sdbnf-" + String(UInt32.random(in: .min ... .max), radix: 16)
        a = NamespaceEnd(namespace: name + "-a", address: NamespacePair.addressA, peerAddress: NamespacePair.addressB)
        b = NamespaceEnd(namespace: name + "-b", address: NamespacePair.addressB, peerAddress: NamespacePair.addressA)
        do {
            for end in [a, b] {
                try run(NamespacePair.ip, ["netns", "add", end.namespace])
                created.append(end.namespace)
                try run(NamespacePair.ip, ["-n", end.namespace, "link", "set", "lo", "up"])
            }
            guard linked else { return }
            try run(NamespacePair.ip, ["-n", a.namespace, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", b.namespace])
            for end in [a, b] {
                try run(NamespacePair.ip, ["-n", end.namespace, "addr", "add", end.address + "/24", "dev", "veth0"])
                try run(NamespacePair.ip, ["-n", end.namespace, "link", "set", "veth0", "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Deletes both namespaces (their veth ends go with them) and stops every relay into them.
    func remove() {
        for end in [a, b] { end.stopRelays() }
        for namespace in created.reversed() { try? run(NamespacePair.ip, ["netns", "delete", namespace]) }
        created = []
        scratch.remove()
    }

    // MARK: Faults on the link (nftables rules in both namespaces)

    /// Drops every packet between the two ends, both ways: a partition (TCP connections stay
    /// open and silent; nothing is reset).
    func partition() throws { try applyRules(drop: "drop") }

    /// Drops `percent` % of the packets between the two ends, each way, at random (nftables
    /// `numgen random mod 100 < percent`).
    func loseRandomly(percent: Int) throws {
        precondition((1...99).contains(percent))
        try applyRules(drop: "numgen random mod 100 < \(percent) drop")
    }

    /// Removes every rule: the link works again.
    func heal() throws {
        for end in [a, b] { try loadRules("flush ruleset\n", into: end) }
    }

    /// In each namespace, `verdict` for every packet from or to the other end (input and output).
    private func applyRules(drop verdict: String) throws {
        for end in [a, b] {
            let rules = """
                flush ruleset
                table inet faults {
                    chain input { type filter hook input priority 0; policy accept; ip saddr \(end.peerAddress) \(verdict); }
                    chain output { type filter hook output priority 0; policy accept; ip daddr \(end.peerAddress) \(verdict); }
                }

                """
            try loadRules(rules, into: end)
        }
    }

    /// `nft -f` of a ruleset file: the whole set is applied at once or not at all.
    private func loadRules(_ rules: String, into end: NamespaceEnd) throws {
        let file = scratch.file("\(end.namespace).nft")
        try rules.write(toFile: file, atomically: true, encoding: .utf8)
        try run(NamespacePair.ip, ["netns", "exec", end.namespace, NamespacePair.nft, "-f", file])
    }

    /// Runs a command to its end; throws with its output unless it exits 0.
    fileprivate func run(_ executable: String, _ arguments: [String]) throws {
        let result = try ChildProcess.run(executable, arguments, in: scratch)
        guard result.status == .exited(0) else {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")): \(result.status): \(result.stderr)\(result.stdout)")
        }
    }
}

/// One namespace of a pair: where a server runs (`ip netns exec`), with the relays that reach it.
final class NamespaceEnd: ServerPlacement, @unchecked Sendable {
    let namespace: String
    /// This end's address on the link, and the other end's.
    let address: String
    let peerAddress: String
    private let relays = Lock<[TCPRelay]>([])

    init(namespace: String, address: String, peerAddress: String) {
        self.namespace = namespace
        self.address = address
        self.peerAddress = peerAddress
    }

    /// The replication address servers listen on here (each namespace is private: a fixed port).
    var replicationAddress: String { address + ":9090" }

    var commandPrefix: [String] { [NamespacePair.ip, "netns", "exec", namespace] }

    func forward(port: UInt16) throws -> UInt16 {
        let relay = try TCPRelay(listenIn: nil, connectIn: namespace, to: "127.0.0.1", port: port)
        relays.withLock { $0.append(relay) }
        return relay.port
    }

    /// A relay listening on this namespace's 127.0.0.1 that forwards to `host`:`port` from this
    /// namespace (across the link when `host` is the peer's address), delaying each piece.
    func relay(to host: String, port: UInt16) throws -> TCPRelay {
        let relay = try TCPRelay(listenIn: namespace, connectIn: namespace, to: host, port: port)
        relays.withLock { $0.append(relay) }
        return relay
    }

    func stopRelays() {
        for relay in relays.withLock({ $0 }) { relay.stop() }
    }
}
