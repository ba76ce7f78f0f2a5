/// HMAC-SHA-256 (RFC 2104, with the SHA-256 of FIPS 180-4): the proofs of the replication
/// handshake (docs/FORMAT.md, "Authentication"). A key longer than the 64-byte block is hashed
/// first; a shorter one is zero-padded.
public enum HMACSHA256 {
    public static let macSize = SHA256.digestSize

    /// HMAC(key, message) = SHA256((key ⊕ opad) ‖ SHA256((key ⊕ ipad) ‖ message)).
    public static func authenticationCode(key: some Collection<UInt8>, message: some Collection<UInt8>) -> [UInt8] {
        var block = key.count > SHA256.blockSize ? SHA256.hash(key) : Array(key)
        block.append(contentsOf: repeatElement(0, count: SHA256.blockSize - block.count))
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        let innerDigest = inner.finalize()
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(innerDigest)
        return outer.finalize()
    }

    /// Whether `mac` is the code of `message` under `key`, compared in constant time.
    public static func isValid(_ mac: some Collection<UInt8>, key: some Collection<UInt8>, message: some Collection<UInt8>) -> Bool {
        constantTimeEquals(Array(mac), authenticationCode(key: key, message: message))
    }
}
