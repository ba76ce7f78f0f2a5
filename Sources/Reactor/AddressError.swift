/// An address that cannot be parsed or resolved; `reason` says why.
public struct AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public let address: String
    public let reason: String

    public init(address: String, reason: String) {
        self.address = address
        self.reason = reason
    }

    public var description: String { "\"\(address)\": \(reason)" }
}
