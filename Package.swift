// swift-tools-version: 6.2
import PackageDescription

/// Settings every Swift target shares: Swift 6 language mode plus the upcoming features the
/// server libraries we model ourselves on (valkey-swift, swift-log) turn on.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "nanad",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "NanaClient", targets: ["NanaClient"]),
        .library(name: "NanaWire", targets: ["NanaWire"]),
        .executable(name: "nanad", targets: ["nanad"]),
        .executable(name: "nanactl", targets: ["nanactl"]),
        .executable(name: "nanabench", targets: ["nanabench"]),
        .executable(name: "nanafuzz", targets: ["nanafuzz"]),
        .executable(name: "nanafuzz-dispatch", targets: ["nanafuzz-dispatch"]),
        // The tests' fault-injecting SQLite VFS, loaded into a real nanad with LD_PRELOAD.
        .library(name: "NanaFaultVFS", type: .dynamic, targets: ["CNanaFaultVFS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        // System libraries, found with pkg-config and installed from Debian.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMsgPack", pkgConfig: "msgpack", providers: [.apt(["libmsgpack-dev"])]),
        // msgpack-c's own unpack template instantiated with a deeper stack, plus the bounds
        // pre-check that runs before msgpack-c sees untrusted bytes.
        .target(name: "CNanaMsgPack", dependencies: ["CMsgPack"]),
        // Atomics on a shared mapping and descriptor passing, for the near-cache's boards.
        .target(name: "CNanaBoard"),
        // For the tests only (Tests/Support/CNanaFaultVFS/fault_vfs.c): never linked into nanad.
        .target(name: "CNanaFaultVFS", dependencies: ["CSQLite"], path: "Tests/Support/CNanaFaultVFS"),

        .target(
            name: "NanaWire",
            dependencies: [
                "CNanaMsgPack", "CMsgPack",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NanaStorage",
            dependencies: [
                "CSQLite", "CNanaBoard", "NanaWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NanaServer",
            dependencies: [
                "NanaWire", "NanaStorage", "CNanaBoard",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NanaClient",
            dependencies: [
                "NanaWire", "CNanaBoard",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "nanad",
            dependencies: [
                "NanaServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "nanactl",
            dependencies: [
                "NanaClient", "NanaWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "nanabench",
            dependencies: [
                "NanaClient", "NanaWire", "CNanaBoard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),

        // libFuzzer target (tools/fuzz/README.md); a plain build replays inputs.
        .executableTarget(name: "nanafuzz", dependencies: ["NanaWire"], swiftSettings: swiftSettings),
        // The second target: request sequences through the dispatcher, with real databases.
        .executableTarget(
            name: "nanafuzz-dispatch",
            dependencies: [
                "NanaServer", "NanaStorage", "NanaWire",
                .product(name: "NIOCore", package: "swift-nio"),
                // EmbeddedChannel, for the harness's connection (FuzzConnection.swift).
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "NanaWireTests", dependencies: ["NanaWire", .product(name: "OrderedCollections", package: "swift-collections")], swiftSettings: swiftSettings),
        .testTarget(
            name: "NanaStorageTests",
            dependencies: ["NanaStorage", "NanaWire", "NanaServer", .product(name: "OrderedCollections", package: "swift-collections")],
            exclude: ["Fixtures"],  // read from disk by path, not bundled
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "NanaServerTests", dependencies: ["NanaServer", "NanaWire"], swiftSettings: swiftSettings),
        .testTarget(name: "NanaClientTests", dependencies: ["NanaClient", "NanaWire"], swiftSettings: swiftSettings),
        .testTarget(
            name: "IntegrationTests",
            // The executables are dependencies so that `swift test` builds them: the tests start them.
            // NanaServer for its method table (ReadOnlyAccessTests calls every declared method).
            dependencies: ["NanaClient", "NanaWire", "NanaServer", "nanad", "nanactl", "nanabench", "nanafuzz", "nanafuzz-dispatch",
                           .product(name: "OrderedCollections", package: "swift-collections"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
    ]
)
