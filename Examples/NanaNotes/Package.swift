// swift-tools-version: 6.2
import PackageDescription

// An HTTP service that keeps its state in nanad: Hummingbird 2 and NanaClient in one
// ServiceGroup. Built on its own (`swift build --package-path Examples/NanaNotes`), so that
// Hummingbird's build stays out of nanad's own.
let package = Package(
    name: "NanaNotes",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "nanad", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "NanaNotes",
            dependencies: [
                .product(name: "NanaClient", package: "nanad"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ]
)
