/// Whether `a` and `b` hold the same bytes, in a time that depends only on their lengths, never on
/// where they first differ: a peer timing the comparison of its proof with the expected one learns
/// nothing about the expected bytes. (Lengths are public: proofs have a fixed size.)
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
