import Foundation
import MediscopeImaging
import TestSupport
@testable import MediscopeInference

/// The models and reference values these tests read, below the repository's root.
extension Repository {
    static let tinyManifest = root.appendingPathComponent("models/tiny/manifest.json")
    static let defaultManifest = root.appendingPathComponent("models/manifest.json")
    static let reference = root.appendingPathComponent("Tests/Artifacts/reference")
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
    return AnalysisPipeline(manifest: try ModelManifest.load(from: Repository.tinyManifest), options: options)
}
