// swift-tools-version: 6.2
import PackageDescription

// Module boundaries (README.md, Layout): Manifests ← MeshConfig ← {Proxy, ControlPlane};
// Identity and Telemetry are leaves. Proxy and ControlPlane never import each other.
let package = Package(
    name: "eino",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "eino", targets: ["eino"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // Benchmark only (bench/): latency histograms for eino-loadgen.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(name: "Manifests", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "MeshConfig", dependencies: ["Manifests", .product(name: "Yams", package: "Yams")]),
        .target(name: "Identity", dependencies: [
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .target(name: "Telemetry"),
        .target(name: "Proxy", dependencies: [
            "MeshConfig", "Identity", "Telemetry",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // A small client for the Kubernetes API (list, watch, TokenReview), used by ControlPlane only.
        .target(name: "Kubernetes", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "ControlPlane", dependencies: [
            "Manifests", "MeshConfig", "Identity", "Telemetry", "Kubernetes", "Deploy",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Deployment helpers (`eino init`'s iptables plan, `eino inject`): pure, no networking.
        .target(name: "Deploy", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "EinoCLI", dependencies: [
            "Manifests", "MeshConfig", "Proxy", "ControlPlane", "Identity", "Deploy", "Kubernetes",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "eino", dependencies: ["EinoCLI"]),
        // The benchmark's open-loop load generator (bench/, `make bench`); not part of `eino`.
        .executableTarget(name: "eino-loadgen", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        // Micro-benchmarks of the per-request pieces (bench/microbench.sh); not part of `eino`.
        .executableTarget(name: "eino-microbench", dependencies: [
            "MeshConfig", "Proxy", "Telemetry",
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // Shared by test targets: runs the built `eino` and real peers.
        .target(name: "EinoTestSupport", path: "Tests/Support"),
        .testTarget(name: "ManifestsTests", dependencies: ["Manifests", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane", "Kubernetes", "Manifests", "MeshConfig", "Telemetry"]),
        .testTarget(name: "EinoCLITests", dependencies: ["EinoTestSupport"]),
        .testTarget(name: "IdentityTests", dependencies: [
            "Identity", "EinoTestSupport",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),
        .testTarget(name: "DeployTests", dependencies: ["Deploy"]),
        .testTarget(name: "MeshConfigTests", dependencies: ["MeshConfig", "Manifests"]),
        .testTarget(name: "ProxyTests", dependencies: [
            "Proxy", "EinoTestSupport", "Identity", "MeshConfig",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
