import GoFlags
import Testing

private func makeFlags() -> FlagSet {
    let flags = FlagSet(programName: "test")
    flags.string("dir", usage: "data directory")
    flags.bool("create", usage: "create the directory")
    flags.int("count", default: 7, usage: "a number")
    flags.duration("timeout", default: .seconds(5), usage: "a duration")
    return flags
}

@Test func spaceSeparatedValues() throws {
    let flags = makeFlags()
    try flags.parse(["-dir", "./data", "-count", "12", "-timeout", "500ms"])
    #expect(flags.string("dir") == "./data")
    #expect(flags.int("count") == 12)
    #expect(flags.duration("timeout") == .milliseconds(500))
}

@Test func equalsSyntaxAndDoubleDash() throws {
    let flags = makeFlags()
    try flags.parse(["--dir=/tmp/x", "-create=false", "--timeout=1m30s"])
    #expect(flags.string("dir") == "/tmp/x")
    #expect(flags.bool("create") == false)
    #expect(flags.duration("timeout") == .seconds(90))
}

@Test func bareBooleanIsTrue() throws {
    let flags = makeFlags()
    try flags.parse(["-create", "-dir", "d"])
    #expect(flags.bool("create"))
    #expect(flags.isSet("create"))
    #expect(!flags.isSet("count"))
}

@Test func defaultsApplyWhenFlagsAreAbsent() throws {
    let flags = makeFlags()
    try flags.parse([])
    #expect(flags.int("count") == 7)
    #expect(flags.duration("timeout") == .seconds(5))
    #expect(flags.string("dir") == "")
}

@Test func parsingStopsAtTheFirstNonFlag() throws {
    let flags = makeFlags()
    try flags.parse(["-create", "rest", "-dir", "x"])
    #expect(flags.remaining == ["rest", "-dir", "x"])
    #expect(flags.string("dir") == "")
}

@Test func unknownFlagIsNamed() {
    let flags = makeFlags()
    #expect(throws: FlagSet.ParseError.unknownFlag("nope")) { try flags.parse(["-nope"]) }
    #expect(FlagSet.ParseError.unknownFlag("nope").description == "flag provided but not defined: -nope")
}

@Test func missingValueIsNamed() {
    let flags = makeFlags()
    #expect(throws: FlagSet.ParseError.missingValue("dir")) { try flags.parse(["-dir"]) }
}

@Test func badValuesAreNamed() {
    #expect(throws: FlagSet.ParseError.self) { try makeFlags().parse(["-count", "twelve"]) }
    #expect(throws: FlagSet.ParseError.self) { try makeFlags().parse(["-timeout", "5"]) }
    #expect(throws: FlagSet.ParseError.self) { try makeFlags().parse(["-timeout", "5x"]) }
    #expect(throws: FlagSet.ParseError.self) { try makeFlags().parse(["-create=maybe"]) }
}

@Test func helpIsRequestedByHAndHelp() {
    #expect(throws: FlagSet.ParseError.helpRequested) { try makeFlags().parse(["-h"]) }
    #expect(throws: FlagSet.ParseError.helpRequested) { try makeFlags().parse(["--help"]) }
}

@Test func usageListsEveryFlagWithItsDefault() throws {
    let flags = makeFlags()
    try flags.parse(["-count", "99"])
    let usage = flags.usage
    #expect(usage.contains("-dir string"))
    #expect(usage.contains("-count int"))
    #expect(usage.contains("(default 7)"))  // the default, not the parsed value
    #expect(usage.contains("(default 5s)"))
}

@Test(arguments: [
    ("0", Duration.zero), ("500ms", .milliseconds(500)), ("5s", .seconds(5)), ("1m30s", .seconds(90)),
    ("1.5h", .seconds(5400)), ("2h45m", .seconds(9900)), ("100us", .microseconds(100)), ("10ns", .nanoseconds(10)),
    ("2562047h", .seconds(2_562_047 * 3600)),
])
func goDurationsParse(text: String, expected: Duration) {
    #expect(parseGoDuration(text) == expected)
}

/// Go's largest duration is 2562047h47m16.854775807s; anything longer is refused, not a trap.
@Test(arguments: ["", "5", "s", "-1s", "1x", "1.2.3s", "ms5", "9999999999h", "2562048h", "99999999999999999999999999h"])
func malformedDurationsAreRefused(text: String) {
    #expect(parseGoDuration(text) == nil)
}

@Test func durationsFormatAsGoPrintsThem() {
    #expect(formatGoDuration(.seconds(5)) == "5s")
    #expect(formatGoDuration(.seconds(90)) == "1m30s")
    #expect(formatGoDuration(.milliseconds(500)) == "500ms")
    #expect(formatGoDuration(.zero) == "0s")
    #expect(formatGoDuration(.seconds(3600)) == "1h0m0s")
}
