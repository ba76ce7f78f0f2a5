// swift-tools-version: 6.0
// The fuzz targets of small-db (docs/OPERATIONS.md, "How we test: fuzzing"): one executable per
// decoder of untrusted bytes, each only an `LLVMFuzzerTestOneInput`. A separate package, so the
// root package never builds them; they only link when built with `-sanitize=fuzzer`, which
// supplies libFuzzer's `main`. Build and run them all with `Fuzz/run.sh`.
import PackageDescription

let fuzzTargets = [
    "fuzz_wal_segment",
    "fuzz_wal_chunked",
    "fuzz_wal_roundtrip",
    "fuzz_checkpoint",
    "fuzz_checkpoint_chunked",
    "fuzz_checkpoint_roundtrip",
    "fuzz_http_request",
    "fuzz_json_body",
    "fuzz_txn_body",
    "fuzz_base64",
    "fuzz_percent_decoding",
    "fuzz_repl_frame_to_primary",
    "fuzz_repl_frame_to_backup",
    "fuzz_repl_state",
]

let package = Package(
    name: "small-db-fuzz",
    dependencies: [.package(name: "small-db", path: "..")],
    targets: fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [.product(name: "WireProtocol", package: "small-db"), "FuzzSupport"],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    } + [
        // What the targets share (the input grammar's reader); not a target of its own.
        .target(name: "FuzzSupport"),
    ],
    swiftLanguageModes: [.v6]
)
