import Platform
#if canImport(Glibc)
import Glibc
#endif

/// The shared secret of `-repl-token-file`: both sides of a replication connection prove they
/// know it (`ReplicationAuthentication`); it never goes on the wire.
///
/// What must stay true: at least `minimumLength` bytes (a short token could be guessed by trying);
/// read once, at start; its bytes appear in no log line and no description.
public struct ReplicationToken: Sendable, CustomStringConvertible {
    /// The shortest token accepted, in bytes.
    public static let minimumLength = 16
    /// The longest token file read.
    public static let maximumFileSize = 4096

    let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(ReplicationTokenError) {
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count >= ReplicationToken.minimumLength else { throw .tooShort(bytes.count) }
        self.bytes = bytes
    }

    /// Never the secret.
    public var description: String { "ReplicationToken(\(bytes.count) bytes)" }

    /// The token in the file at `path`: its bytes without one trailing newline ("\n" or "\r\n").
    /// `warning` is set when the file can be read by its group or by others.
    public static func load(path: String) throws(ReplicationTokenError) -> (token: ReplicationToken, warning: String?) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, errno: errno) }
        defer { close(descriptor) }
        var information = stat()
        guard fstat(descriptor, &information) == 0 else { throw .unreadable(path: path, errno: errno) }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, errno: errno)
            }
            if count == 0 { break }
            contents.append(contentsOf: buffer[0..<count])
            guard contents.count <= maximumFileSize else { throw .tooLarge(path: path) }
        }
        if contents.last == 0x0A {
            contents.removeLast()
            if contents.last == 0x0D { contents.removeLast() }
        }
        let token = try ReplicationToken(bytes: contents)
        let readableByOthers = information.st_mode & (S_IRGRP | S_IROTH) != 0
        let warning = readableByOthers
            ? "-repl-token-file \(path) can be read by its group or others (mode \(String(information.st_mode & 0o777, radix: 8))): chmod 600 it"
            : nil
        return (token, warning)
    }
}

/// Why a replication token was refused.
public enum ReplicationTokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, errno: Int32)
    case tooLarge(path: String)
    case empty
    case tooShort(Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let code): "cannot read \(path): \(errnoDescription(code))"
        case .tooLarge(let path): "\(path) is larger than \(ReplicationToken.maximumFileSize) bytes: not a token file"
        case .empty: "the token is empty"
        case .tooShort(let count): "the token is \(count) bytes; at least \(ReplicationToken.minimumLength) are needed"
        }
    }
}
