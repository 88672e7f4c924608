import Foundation
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// Reference values made by Tests/Reference/reference_pipeline.py (Pillow + onnxruntime on the original
/// ONNX file, pytorch_grad_cam.GradCAM), written by `make reference` before `swift test`.
struct ReferenceFile: Decodable {
    struct Image: Decodable {
        var path: String
        var results: [Result]
    }
    struct Result: Decodable {
        var id: String
        var probabilities: [String: Double]
        var prediction: String
        var camLayer: [[Double]]
        /// grad-cam's own output: the layer map resized to the input size (cv2, bilinear), normalised.
        var cam: [[Double]]
    }
    var images: [Image]

    static func load(_ name: String) throws -> ReferenceFile {
        let url = Repository.reference.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: url) else {
            Issue.record("reference file \(url.path) is missing: run `make test` (it runs `make reference` first)")
            throw CancellationError()
        }
        return try JSONDecoder().decode(ReferenceFile.self, from: data)
    }
}

@Suite(.serialized) struct ParityTests {
    func compare(manifest: URL, reference name: String) throws {
        let reference = try ReferenceFile.load(name)
        #expect(reference.images.count >= 3, "parity needs several images")
        var options = PipelineOptions()
        options.renderImages = false
        let pipeline = AnalysisPipeline(manifest: try ModelManifest.load(from: manifest), options: options)
        var worstProbability = 0.0, worstCAM = 0.0
        for image in reference.images {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image.path)))
            let analysis = try pipeline.analyze(imageBytes: bytes)
            for expected in image.results {
                let actual = try #require(analysis.results.first { $0.id == expected.id }, "result \(expected.id)")
                #expect(actual.prediction == expected.prediction, "\(image.path) \(expected.id)")
                for (label, p) in expected.probabilities {
                    let diff = abs((actual.probability(of: label) ?? .nan) - p)
                    worstProbability = max(worstProbability, diff)
                    #expect(diff < 1e-4, "\(image.path) \(expected.id) P(\(label))")
                }
                let expectedCAM = expected.camLayer.flatMap { $0 }
                #expect(expectedCAM.count == actual.gradCAM.values.count, "\(expected.id) map size")
                let diff = zip(expectedCAM, actual.gradCAM.values).map { abs($0 - Double($1)) }.max() ?? .infinity
                worstCAM = max(worstCAM, diff)
                #expect(diff < 1e-3, "\(image.path) \(expected.id) Grad-CAM")

                // Upsampled to the model's input size, as grad-cam returns it.
                let full = expected.cam.flatMap { $0 }
                let ours = actual.gradCAM.resizedBilinear(width: expected.cam.first?.count ?? 0, height: expected.cam.count)
                    .minMaxNormalized()
                let fullDiff = zip(full, ours.values).map { abs($0 - Double($1)) }.max() ?? .infinity
                #expect(full.count == ours.values.count && fullDiff < 1e-3, "\(image.path) \(expected.id) upsampled Grad-CAM")
                worstCAM = max(worstCAM, fullDiff)
            }
        }
        print("parity \(name): worst probability difference \(worstProbability), worst Grad-CAM difference \(worstCAM)")
    }

    @Test func defaultModelMatchesOnnxRuntimeAndPytorchGradCAM() throws {
        try compare(manifest: Repository.defaultManifest, reference: "default.json")
    }

    @Test func tinyModelMatchesTorchAndPytorchGradCAM() throws {
        try compare(manifest: Repository.tinyManifest, reference: "tiny.json")
    }
}
