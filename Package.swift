// swift-tools-version:6.0
import PackageDescription

/// Kernels index raw buffers in tight loops; their release builds drop overflow and
/// precondition checks (input validation happens before data reaches them, and debug
/// builds — the test suite — keep every check). They are compiled for AVX2 + FMA CPUs
/// (haswell, 2013 on) so the 8-lane kernels are one instruction each; RINGTRAIN_TARGET_CPU
/// picks another (x86-64 for any 64-bit x86, native for the build machine).
#if arch(x86_64)
let targetCPU = Context.environment["RINGTRAIN_TARGET_CPU"] ?? "haswell"
#else
let targetCPU = Context.environment["RINGTRAIN_TARGET_CPU"] ?? "generic"
#endif
let numeric: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", targetCPU], .when(configuration: .release))]

let package = Package(
    name: "RingTrain",
    products: [
        .executable(name: "ringtrain", targets: ["ringtrain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries (installed by scripts/bootstrap).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ", pkgConfig: "libzmq",
                       providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        .target(name: "CSupport"),
        .target(name: "Config"),
        .target(name: "TensorCore", dependencies: ["CBLAS"], swiftSettings: numeric),
        .target(name: "NN", dependencies: ["TensorCore", "Config"], swiftSettings: numeric),
        .target(name: "Optim", dependencies: ["TensorCore", "NN"], swiftSettings: numeric),
        .target(name: "Formats", dependencies: ["Config", "CZlib", "Yams"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "Formats"]),
        .target(name: "Comm", dependencies: ["TensorCore", "CZMQ", "CSupport"], swiftSettings: numeric),
        .target(name: "Train", dependencies: ["Config", "TensorCore", "NN", "Optim", "Formats", "Datasets", "Comm",
                                              .product(name: "Logging", package: "swift-log")]),
        .target(name: "Cluster", dependencies: ["Train", "Comm", "Formats", "CSupport", "CZMQ",
                                                .product(name: "Logging", package: "swift-log")]),
        .target(name: "Report", dependencies: ["Config", "Formats"]),
        .executableTarget(name: "ringtrain", dependencies: [
            "Train", "Cluster", "Comm", "CSupport", "Report",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "TestSupport", dependencies: ["TensorCore", "NN", "Formats", "Config", "Comm", "CSupport"]),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Optim", "TestSupport"]),
        .testTarget(name: "OptimTests", dependencies: ["Optim", "NN", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TestSupport"]),
        .testTarget(name: "CommTests", dependencies: ["Comm", "TestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "TestSupport"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Optim", "TestSupport"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Formats", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)

