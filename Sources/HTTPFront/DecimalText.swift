/// Decimal digits straight into a body or head (no String per number on the listing's hot path).
enum DecimalText {
    static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        var divisor: UInt64 = 1
        while divisor <= value / 10 { divisor *= 10 }
        repeat {
            buffer.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        } while divisor > 0
    }

    static func append(_ value: Int, to buffer: inout [UInt8]) {
        append(UInt64(value), to: &buffer)
    }
}
