// swift-tools-version:6.0
import PackageDescription

// Debian's libtorch-dev keeps the C++ frontend headers below this folder.
let torchAPIHeaders = "/usr/include/torch/csrc/api/include"

// SHA-256/HMAC, RSA and X.509: used by the auth module and by the tests that sign Firebase tokens.
let cryptoProducts: [Target.Dependency] = [
    .product(name: "Crypto", package: "swift-crypto"),
    .product(name: "_CryptoExtras", package: "swift-crypto"),
    .product(name: "X509", package: "swift-certificates"),
]

let package = Package(
    name: "Mediscope",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mediscope", targets: ["mediscope"]),
        // The libtorch shim as a shared object of its own, opened with dlopen only where models run
        // (CTorchLoader), so the master, io workers and background processes never map libtorch.
        .library(name: "MediscopeTorch", type: .dynamic, targets: ["CTorch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // C++ shim over libtorch, built only into libMediscopeTorch.so; CTorchLoader's ctorch.h is its
        // whole (plain C) API.
        .target(
            name: "CTorch",
            dependencies: ["CTorchLoader"],
            cxxSettings: [
                .unsafeFlags(["-isystem", torchAPIHeaders, "-std=c++17", "-fexceptions"]),
                .define("NDEBUG"),
            ],
            linkerSettings: [
                .linkedLibrary("torch"),
                .linkedLibrary("torch_cpu"),
                .linkedLibrary("c10"),
                .linkedLibrary("stdc++"),
            ]
        ),
        // C wrappers over libjpeg-turbo, libpng and libwebp; setjmp/longjmp never leave this target.
        .target(
            name: "CImageCodecs",
            linkerSettings: [
                .linkedLibrary("jpeg"),
                .linkedLibrary("png16"),
                .linkedLibrary("webp"),
            ]
        ),
        // C++ shim over DCMTK (Debian's libdcmtk-dev): DICOM files in, one frame's stored values and the
        // rendering attributes out; include/CDicom.h is its whole (plain C) API.
        .target(
            name: "CDicom",
            cxxSettings: [.unsafeFlags(["-fexceptions"])],
            linkerSettings: [
                .linkedLibrary("dcmjpls"), .linkedLibrary("dcmtkcharls"), .linkedLibrary("dcmjpeg"),
                .linkedLibrary("ijg8"), .linkedLibrary("ijg12"), .linkedLibrary("ijg16"), .linkedLibrary("dcmimgle"),
                .linkedLibrary("dcmdata"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"), .linkedLibrary("z"),
                .linkedLibrary("stdc++"),
                .linkedLibrary("openjp2"),
            ]
        ),
        .target(name: "MediscopeImaging", dependencies: ["CImageCodecs", "CDicom"]),
        // The DICOM listener (Storage SCP + C-ECHO) over DCMTK's dcmnet, and its Swift wrapper.
        .target(
            name: "CDicomNet",
            cxxSettings: [.unsafeFlags(["-fexceptions"])],
            linkerSettings: [
                .linkedLibrary("dcmnet"), .linkedLibrary("dcmdata"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"),
                .linkedLibrary("z"), .linkedLibrary("stdc++"),
            ]
        ),
        .target(name: "MediscopeDicomNet", dependencies: ["CDicomNet"]),
        // Results sent back to the PACS: the durable DICOM outbox (SQLite), its delivery loop, and the
        // C-STORE and STOW-RS senders.
        .target(
            name: "MediscopeDicomOut",
            dependencies: ["MediscopeDicomNet", "MediscopeNet", "MediscopeSQLite", "MediscopeStore", "MediscopeEncoding",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // C++ shim over DCMTK's dcmsr and dcmdata that writes analysis results as DICOM (SR, Secondary
        // Capture); include/CDicomWrite.h is its whole (plain C) API.
        .target(
            name: "CDicomWrite",
            cxxSettings: [.unsafeFlags(["-fexceptions"])],
            linkerSettings: [
                .linkedLibrary("dcmsr"), .linkedLibrary("dcmdata"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"),
                .linkedLibrary("stdc++"),
            ]
        ),
        // An analysis as DICOM downloads: its Structured Report and a Secondary Capture per heatmap.
        .target(
            name: "MediscopeDicomWrite",
            dependencies: ["CDicomWrite", "MediscopeStore", "MediscopeImaging", "MediscopeReport", "MediscopeEncoding"]
        ),
        // dlopen of libMediscopeTorch.so and the table of its entry points; links no libtorch.
        .target(name: "CTorchLoader"),
        .target(name: "MediscopeInference", dependencies: ["CTorchLoader", "MediscopeImaging", "MediscopeEncoding"]),
        // Hex, base64url, SHA-256 (swift-crypto) and millisecond dates: one of each for every module,
        // with no database in it, so a non-SQLite backend and the token verifier can use them too.
        .target(
            name: "MediscopeEncoding",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // What the SQLite stores share: opening (WAL, synchronous=FULL), migrating, reading and writing
        // with each store's own error type, sortable ids.
        .target(
            name: "MediscopeSQLite",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "MediscopeStore",
            dependencies: ["MediscopeSQLite", "MediscopeImaging", "MediscopeEncoding", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // libfcgi's FCGX API (Debian's libfcgi-dev).
        .systemLibrary(name: "CFastCGI", path: "Sources/CFastCGI"),
        // Shared-memory scoreboard, signal flags, sockets and listen-queue probes for the process manager.
        .target(name: "CServerSupport"),
        .target(
            name: "MediscopeServer",
            dependencies: ["CFastCGI", "CServerSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // The printable report: Mustache templates from templates/ filled from a stored analysis.
        .target(
            name: "MediscopeReport",
            dependencies: ["MediscopeStore", "MediscopeImaging", .product(name: "Mustache", package: "swift-mustache")]
        ),
        .target(
            name: "MediscopeApp",
            dependencies: [
                "MediscopeServer", "MediscopeImaging", "MediscopeInference", "MediscopeStore", "MediscopeAuth", "MediscopeReport",
                "MediscopeFirestore", "MediscopeFirestoreStore", "MediscopeOutbox", "MediscopeLLM", "MediscopeJobs",
                "MediscopeIdempotency", "MediscopeDicomNet", "MediscopeStudies", "MediscopeDicomWrite", "MediscopeDicomOut", .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        // Debian's libargon2 (argon2id password hashes).
        .systemLibrary(name: "CArgon2", path: "Sources/CArgon2"),
        // libcurl behind a tiny C wrapper, and the Swift HTTP client over it (Google's certificates and
        // tokens, Firestore's REST API).
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "MediscopeNet", dependencies: ["CCurl"]),
        // Google Cloud Firestore's REST API v1 (typed values, commit, batchGet, runQuery) and credentials.
        .target(name: "MediscopeFirestore", dependencies: ["MediscopeNet", "MediscopeEncoding"] + cryptoProducts),
        // The stores' Firestore implementations (several hosts, one database).
        .target(name: "MediscopeFirestoreStore", dependencies: ["MediscopeFirestore", "MediscopeStore", "MediscopeImaging", "MediscopeAuth", "MediscopeSQLite", "MediscopeEncoding"]),
        // The local, durable outbox (SQLite) of writes bound for Firestore, its delivery loop, and the
        // stores that read Firestore with this host's waiting writes laid over it.
        .target(
            name: "MediscopeOutbox",
            dependencies: ["MediscopeFirestoreStore", "MediscopeFirestore", "MediscopeStore", "MediscopeAuth", "MediscopeSQLite",
                           "MediscopeEncoding", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The plain-language report's draft: an OpenAI-compatible chat completions client over libcurl,
        // the facts a prompt may hold (no patient identifiers), the prompt and fallback templates.
        .target(
            name: "MediscopeLLM",
            dependencies: ["MediscopeNet", "MediscopeStore", "MediscopeImaging", .product(name: "Mustache", package: "swift-mustache")]
        ),
        // A durable job queue (SQLite, leases, per-organisation fairness) for work done outside the pools.
        .target(
            name: "MediscopeJobs",
            dependencies: ["MediscopeSQLite", "MediscopeStore", "MediscopeEncoding", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The DICOM instances this host received (C-STORE, STOW-RS): the Studies view, series summaries, counters.
        .target(
            name: "MediscopeStudies",
            dependencies: ["MediscopeSQLite", "MediscopeStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Idempotency-Keys (IETF httpapi draft): which this host has seen, who runs them, what they made.
        .target(
            name: "MediscopeIdempotency",
            dependencies: ["MediscopeSQLite", "MediscopeStore", "MediscopeEncoding", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Copies an embedded SQLite deployment into Firestore (`mediscope store migrate --to firestore`).
        .target(
            name: "MediscopeMigration",
            dependencies: ["MediscopeStore", "MediscopeAuth", "MediscopeFirestore", "MediscopeFirestoreStore", "MediscopeEncoding"]
        ),
        // Linux calls Glibc's Swift module lacks: renameat2 (RENAME_EXCHANGE) and syncfs.
        .target(name: "CFileSupport"),
        // Backup, check and restore of an embedded deployment's store folder (`mediscope store backup`).
        .target(
            name: "MediscopeBackup",
            dependencies: ["CFileSupport", "MediscopeStore", "MediscopeAuth", "MediscopeJobs", "MediscopeSQLite", "MediscopeEncoding",
                           .product(name: "GRDB", package: "GRDB.swift")] + cryptoProducts
        ),
        // Test-only: the real Firestore emulator on a free loopback port, as a suite trait.
        .target(name: "FirestoreTestKit", dependencies: ["MediscopeFirestore", "MediscopeNet", "FirebaseTestKit", "TestSupport"], path: "Tests/FirestoreTestKit"),
        .target(
            name: "MediscopeAuth",
            dependencies: [
                "CArgon2", "MediscopeNet", "MediscopeSQLite", "MediscopeEncoding",
                .product(name: "GRDB", package: "GRDB.swift"),
            ] + cryptoProducts
        ),
        .executableTarget(
            name: "mediscope",
            dependencies: [
                "MediscopeInference",
                "MediscopeApp",
                "MediscopeOutbox",
                "MediscopeDicomOut",
                "MediscopeServer",
                "MediscopeAuth",
                "MediscopeMigration",
                "MediscopeBackup",
                "MediscopeFirestore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmarks live apart from the product (bench/run.sh drives them).
        .executableTarget(
            name: "mediscope-bench",
            dependencies: ["MediscopeInference", "MediscopeStore", "MediscopeBackup", "ImageTestKit"],
            path: "bench/Sources"
        ),
        // Test-only: images the tests generate (scan bombs, EXIF-oriented files, chunked PNGs).
        .target(name: "ImageTestKit", dependencies: ["MediscopeImaging"], path: "Tests/ImageTestKit"),
        // Test-only: what every test target may need (temporary folders, running a program, the repository's root,
        // a locked box) and the fixtures several targets share (an analysis, account store values).
        .target(
            name: "TestSupport",
            dependencies: ["MediscopeStore", "MediscopeImaging", "MediscopeAuth", "MediscopeSQLite", "MediscopeEncoding"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "MediscopeImagingTests",
            dependencies: ["MediscopeImaging", "CImageCodecs", "ImageTestKit", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "MediscopeEncodingTests",
            dependencies: ["MediscopeEncoding"]
        ),
        .testTarget(
            name: "MediscopeStoreTests",
            dependencies: ["MediscopeStore", "MediscopeImaging", "MediscopeSQLite", "MediscopeFirestoreStore", "MediscopeFirestore", "MediscopeOutbox", "FirestoreTestKit", "MediscopeEncoding", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The outbox against the real Firestore emulator, with a fault proxy between them.
        .testTarget(
            name: "MediscopeOutboxTests",
            dependencies: ["MediscopeOutbox", "MediscopeStore", "MediscopeFirestoreStore", "MediscopeFirestore", "MediscopeAuth", "MediscopeEncoding",
                           "MediscopeSQLite", "FirestoreTestKit", "TestSupport"]
        ),
        // Test-only: a local certificate server and token signer shared by the auth and integration tests.
        .target(
            name: "FirebaseTestKit",
            dependencies: cryptoProducts,
            path: "Tests/FirebaseTestKit"
        ),
        .testTarget(
            name: "MediscopeAuthTests",
            dependencies: ["MediscopeAuth", "MediscopeEncoding", "MediscopeNet", "FirebaseTestKit", "MediscopeFirestoreStore", "FirestoreTestKit", "TestSupport"] + cryptoProducts
        ),
        .testTarget(name: "MediscopeSQLiteTests", dependencies: ["MediscopeSQLite"]),
        // The backup module's Swift API on a store in a temporary folder (the commands are IntegrationTests').
        .testTarget(name: "MediscopeBackupTests", dependencies: ["MediscopeBackup", "MediscopeStore", "MediscopeEncoding", "TestSupport"]),
        // libcurl's client against a local HTTP server.
        .testTarget(name: "MediscopeNetTests", dependencies: ["MediscopeNet", "FirebaseTestKit"]),
        // What the Firestore stores promise beyond the shared contracts, against the real Firestore emulator.
        .testTarget(
            name: "MediscopeFirestoreStoreTests",
            dependencies: ["MediscopeFirestoreStore", "MediscopeFirestore", "MediscopeAuth", "MediscopeEncoding", "FirestoreTestKit", "TestSupport"]
        ),
        .testTarget(
            name: "MediscopeAppTests",
            dependencies: ["MediscopeApp", "MediscopeDicomOut", "MediscopeFirestore", "MediscopeServer", "TestSupport"]
        ),
        .testTarget(
            name: "MediscopeServerTests",
            dependencies: ["MediscopeServer", "CServerSupport", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // Starts real nginx and the real pool; needs `make test`'s model and scans.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["MediscopeApp", "MediscopeImaging", "MediscopeInference", "FirebaseTestKit", "ImageTestKit", "FirestoreTestKit", "MediscopeFirestore",
                           "MediscopeDicomWrite", "TestSupport"] + cryptoProducts
        ),
        // Starts the real Firestore emulator (google-cloud-cli-firestore-emulator, OpenJDK 17).
        .testTarget(
            name: "MediscopeFirestoreTests",
            dependencies: ["MediscopeFirestore", "MediscopeNet", "FirebaseTestKit", "FirestoreTestKit", "TestSupport"] + cryptoProducts
        ),
        // `store migrate` against the real Firestore emulator, through the Swift API and the real binary.
        .testTarget(
            name: "MediscopeMigrationTests",
            dependencies: ["MediscopeMigration", "MediscopeStore", "MediscopeAuth", "MediscopeFirestore", "MediscopeFirestoreStore",
                           "MediscopeEncoding", "MediscopeImaging", "MediscopeSQLite", "FirestoreTestKit", "TestSupport"]
        ),
        .testTarget(name: "MediscopeJobsTests", dependencies: ["MediscopeJobs", "MediscopeStore", "TestSupport"]),
        .testTarget(name: "MediscopeStudiesTests", dependencies: ["MediscopeStudies", "TestSupport"]),
        .testTarget(name: "MediscopeDicomOutTests", dependencies: ["MediscopeDicomOut", "MediscopeStore", "FirebaseTestKit", "TestSupport"]),
        .testTarget(name: "MediscopeIdempotencyTests", dependencies: ["MediscopeIdempotency", "MediscopeSQLite", "TestSupport"]),
        .testTarget(
            name: "MediscopeLLMTests",
            dependencies: ["MediscopeLLM", "MediscopeJobs", "MediscopeStore", "MediscopeNet", "MediscopeImaging", "FirebaseTestKit", "TestSupport"]
        ),
        // The DICOM writer (SR, Secondary Capture) without a server; dcmdump reads what it writes.
        .testTarget(
            name: "MediscopeDicomWriteTests",
            dependencies: ["MediscopeDicomWrite", "CDicomWrite", "MediscopeStore", "MediscopeImaging", "TestSupport"]
        ),
        // The C-STORE SCU and C-ECHO against DCMTK's storescp (and the listener) on loopback ports.
        .testTarget(name: "MediscopeDicomNetTests", dependencies: ["MediscopeDicomNet", "MediscopeDicomOut", "TestSupport"]),
        .testTarget(
            name: "MediscopeReportTests",
            dependencies: ["MediscopeReport", "MediscopeStore", "MediscopeImaging", "TestSupport"]
        ),
        .testTarget(
            name: "MediscopeInferenceTests",
            dependencies: ["MediscopeInference", "MediscopeEncoding", "ImageTestKit", "TestSupport"]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
