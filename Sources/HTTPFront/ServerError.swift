import Platform

/// Why the server could not start.
public enum ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    case addressResolution(String, String)
    case socket(operation: String, address: String, errno: Int32)
    case eventLoop(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .addressResolution(let address, let why): "cannot resolve listen address \(address): \(why)"
        case .socket(let operation, let address, let code): "\(operation) \(address) failed: \(errnoDescription(code)) (errno \(code))"
        case .eventLoop(let operation, let code): "event loop \(operation) failed: \(errnoDescription(code)) (errno \(code))"
        }
    }
}
