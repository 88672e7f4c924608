import Foundation

/// The checkout the tests run from, found from this file's own path so that tests work from any
/// folder (and `swift test` run from elsewhere still finds the models, templates and scripts).
package enum Repository {
    /// The repository's root folder, the one that holds Package.swift.
    package static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `mediscope` executable: next to the test bundle (where `swift build --build-tests` leaves
    /// it, in whichever configuration), else the debug build.
    package static var executable: URL {
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL]
            .map { $0.appendingPathComponent("mediscope") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
            ?? root.appendingPathComponent(".build/debug/mediscope")
    }
}
