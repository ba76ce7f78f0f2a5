import Testing
import WireProtocol

/// RFC 4231 §4.2–4.8, the HMAC-SHA-256 results.
private let rfc4231: [(key: [UInt8], data: [UInt8], mac: String)] = [
    ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    // Test case 5 is specified truncated to 128 bits: its first 16 bytes are compared.
    ([UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8), "a3b6167473100ee06e0c796c2955552b"),
    ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ([UInt8](repeating: 0xaa, count: 131),
     Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]

@Suite("HMAC-SHA-256")
struct HMACSHA256Tests {
    @Test(arguments: rfc4231.indices)
    func rfc4231TestCases(_ index: Int) {
        let (key, data, mac) = rfc4231[index]
        let code = HMACSHA256.authenticationCode(key: key, message: data)
        #expect(code.count == HMACSHA256.macSize)
        #expect(hex(Array(code.prefix(mac.count / 2))) == mac, "RFC 4231 test case \(index + 1)")
    }

    @Test func validationAcceptsOnlyTheExactCode() {
        let key = Array("a shared replication token".utf8)
        let message = Array("nonces".utf8)
        let code = HMACSHA256.authenticationCode(key: key, message: message)
        #expect(HMACSHA256.isValid(code, key: key, message: message))
        for index in code.indices {
            var damaged = code
            damaged[index] ^= 0x01
            #expect(!HMACSHA256.isValid(damaged, key: key, message: message))
        }
        #expect(!HMACSHA256.isValid(code.dropLast(), key: key, message: message))
        #expect(!HMACSHA256.isValid(code, key: key + [1], message: message))
        // (A key padded with zeros is the same HMAC key: RFC 2104 pads it so.)
        #expect(HMACSHA256.isValid(code, key: key + [0], message: message))
    }

    @Test func constantTimeEqualsComparesEveryByte() {
        #expect(constantTimeEquals([], []))
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([0, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2], [1, 2, 3]))
    }

    /// Keys of 64 bytes (one block, used as is) and 65 and 100 (longer: hashed first), with
    /// messages across a block boundary (Python's hmac module).
    @Test func keysAtAndAboveTheBlockSize() {
        #expect(hex(HMACSHA256.authenticationCode(key: [UInt8](repeating: 0x6B, count: 64), message: [UInt8](repeating: 0x6D, count: 65)))
            == "8d2bba5a4384f74df6cc410b12c3bcaa11216283a874e20c3e003489f55d495c")
        #expect(hex(HMACSHA256.authenticationCode(key: [UInt8](repeating: 0x6B, count: 65), message: [UInt8](repeating: 0x6D, count: 55)))
            == "56b309135b99aa71a43ce65fe117677a2699cc14009972a5414ea8575e006d0c")
        #expect(hex(HMACSHA256.authenticationCode(key: [UInt8](repeating: 0x6B, count: 100), message: Array("msg".utf8)))
            == "bd56a1782c2830e8abc6ed866a57a1230661e650b84c62f7ee3accc5fa5af491")
    }
}
