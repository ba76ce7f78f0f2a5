import Platform
import Testing

/// The one set of Duration conversions: how each rounds and where it saturates.
@Suite struct DurationConversionsTests {
    @Test func nanosecondsTruncateAndSaturate() {
        #expect(Duration.milliseconds(1500).nanoseconds == 1_500_000_000)
        #expect(Duration.nanoseconds(-7).nanoseconds == -7)
        #expect(Duration(secondsComponent: 0, attosecondsComponent: 1_999_999_999).nanoseconds == 1)
        #expect(Duration.seconds(Int64.max).nanoseconds == Int.max)
        #expect(Duration.seconds(Int64.min).nanoseconds == Int.min)
    }

    @Test func pollMillisecondsRoundUpAndClamp() {
        #expect(Duration.zero.pollMilliseconds == 0)
        #expect(Duration.nanoseconds(1).pollMilliseconds == 1)  // never wakes before the deadline
        #expect(Duration.milliseconds(250).pollMilliseconds == 250)
        #expect(Duration.nanoseconds(-5).pollMilliseconds == 0)
        #expect(Duration.seconds(10_000_000).pollMilliseconds == Int32.max)
    }

    @Test func secondsAndMillisecondsAsDoubles() {
        #expect(Duration.milliseconds(1500).secondsValue == 1.5)
        #expect(Duration.microseconds(2500).millisecondsValue == 2.5)
    }

    @Test func logDescriptionUsesTheFlagsSyntax() {
        #expect(Duration.milliseconds(300).logDescription == "300ms")
        #expect(Duration.seconds(2).logDescription == "2s")
        #expect(Duration.milliseconds(2007).logDescription == "2.007s")
        #expect(Duration.milliseconds(2500).logDescription == "2.5s")
    }
}
