// swift-tools-version: 6.0
// small-db for Swift: a durable in-memory key/value store.
// No package dependencies, by design (docs/ARCHITECTURE.md): only the Swift toolchain.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "small-db",
    products: [
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "WireProtocol", targets: ["WireProtocol"]),
        .library(name: "StorageEngine", targets: ["StorageEngine"]),
        .library(name: "StorageEngineTesting", targets: ["StorageEngineTesting"]),
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "HTTPFront", targets: ["HTTPFront"]),
        .library(name: "Replication", targets: ["Replication"]),
        .executable(name: "small_db_server", targets: ["small_db_server"]),
        .executable(name: "small_db_example", targets: ["small_db_example"]),
        .executable(name: "small_db_bench", targets: ["small_db_bench"]),
        .executable(name: "small_db_stress", targets: ["small_db_stress"]),
        .executable(name: "small_db_bench_probe", targets: ["small_db_bench_probe"]),
    ],
    targets: [
        // Debug builds (the tests, the sanitizers) lock with pthread mutexes, which TSan sees;
        // release builds with Synchronization.Mutex (Sources/Platform/Lock.swift says why).
        .target(name: "Platform", swiftSettings: strict + [.define("SMALLDB_PTHREAD_LOCKS", .when(configuration: .debug))]),
        .target(name: "WireProtocol", swiftSettings: strict),
        .target(name: "StorageEngine", dependencies: ["Platform", "WireProtocol"], swiftSettings: strict),
        // For users' tests as well as ours: a store that loses power, and a seeded generator.
        .target(name: "StorageEngineTesting", dependencies: ["Platform", "StorageEngine"], swiftSettings: strict),
        .target(name: "Replication", dependencies: ["Platform", "Reactor", "StorageEngine", "WireProtocol"], swiftSettings: strict),
        .target(name: "CLinuxShims"),
        // Event loops, sockets, addresses and the connection lifecycle, below every network front.
        .target(name: "Reactor", dependencies: ["Platform", "CLinuxShims"], swiftSettings: strict),
        .target(name: "HTTPFront", dependencies: ["Platform", "Reactor", "StorageEngine", "WireProtocol"], swiftSettings: strict),
        .target(name: "GoFlags", dependencies: ["Platform"], path: "Sources/Executables/GoFlags", swiftSettings: strict),
        .executableTarget(
            name: "small_db_example",
            dependencies: ["StorageEngine", "GoFlags"],
            path: "Sources/Executables/small_db_example",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "small_db_server",
            dependencies: ["Platform", "Reactor", "StorageEngine", "HTTPFront", "Replication", "GoFlags"],
            path: "Sources/Executables/small_db_server",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "small_db_stress",
            dependencies: ["StorageEngine", "GoFlags"],
            path: "Sources/Executables/small_db_stress",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "small_db_bench_probe",
            dependencies: ["Platform", "StorageEngine"],
            path: "Benchmarks/small_db_bench_probe",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "small_db_bench",
            dependencies: ["Platform", "StorageEngine", "WireProtocol", "GoFlags"],
            path: "Benchmarks/small_db_bench",
            swiftSettings: strict
        ),
        .testTarget(name: "WireProtocolTests", dependencies: ["WireProtocol"], swiftSettings: strict),
        .testTarget(
            name: "StorageEngineTests",
            dependencies: ["Platform", "StorageEngine", "StorageEngineTesting", "WireProtocol", "small_db_stress"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(name: "GoFlagsTests", dependencies: ["GoFlags"], swiftSettings: strict),
        .testTarget(
            name: "HTTPFrontTests",
            dependencies: ["Platform", "Reactor", "HTTPFront", "StorageEngine", "StorageEngineTesting", "WireProtocol", "small_db_server"],
            swiftSettings: strict
        ),
        .testTarget(name: "ReplicationTests", dependencies: ["Platform", "Replication", "StorageEngineTesting"], swiftSettings: strict),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"], swiftSettings: strict),
        .testTarget(name: "ReactorTests", dependencies: ["Platform", "Reactor"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
