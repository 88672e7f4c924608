import Foundation
import MediscopeImaging
@testable import MediscopeInference

/// Paths inside the repository, found from this file so tests run from any folder.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let tinyManifest = root.appendingPathComponent("models/tiny/manifest.json")
    static let defaultManifest = root.appendingPathComponent("models/manifest.json")
    static let reference = root.appendingPathComponent("Tests/Artifacts/reference")

    /// The `mediscope` executable built next to the test bundle.
    static var executable: URL {
        let bundle = Bundle.main.bundleURL
        let candidates = [bundle.deletingLastPathComponent(), bundle]
            .map { $0.appendingPathComponent("mediscope") }
        for c in candidates where FileManager.default.isExecutableFile(atPath: c.path) { return c }
        return root.appendingPathComponent(".build/debug/mediscope")
    }
}

/// A scratch folder removed when the test ends.
final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("mediscope-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func file(_ name: String, _ bytes: [UInt8]) -> URL {
        let u = url.appendingPathComponent(name)
        try! Data(bytes).write(to: u)
        return u
    }
    func file(_ name: String, _ text: String) -> URL { file(name, Array(text.utf8)) }
}

/// Deterministic test images: a smooth gradient with a bright blob, like a crude scan.
func syntheticScan(width: Int, height: Int, channels: Int = 3, seed: Int = 1) -> PixelImage {
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    let cx = Double(width) * (0.3 + 0.1 * Double(seed % 5)), cy = Double(height) * 0.55
    for y in 0..<height {
        for x in 0..<width {
            let d = hypot(Double(x) - cx, Double(y) - cy) / Double(max(width, height))
            let v = 40 + 150 * exp(-d * d * 30) + Double((x * 7 + y * 13 + seed * 31) % 17)
            for c in 0..<channels {
                pixels[(y * width + x) * channels + c] = UInt8(min(255, max(0, v + Double(c * 10))))
            }
        }
    }
    return PixelImage(width: width, height: height, channels: channels, pixels: pixels)
}

func tinyPipeline(render: Bool = false) throws -> AnalysisPipeline {
    var options = PipelineOptions()
    options.renderImages = render
    return AnalysisPipeline(manifest: try ModelManifest.load(from: Repo.tinyManifest), options: options)
}

/// Runs a command, returning its exit status and output.
func runProcess(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a full pipe cannot block the child.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}
