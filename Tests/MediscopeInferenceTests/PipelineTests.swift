import Foundation
import ImageTestKit
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

@Suite struct PipelineTests {
    let scan = try! ImageEncoder.png(syntheticScan(width: 61, height: 45))

    @Test func tinyModelYieldsOwnAndDerivedResultsFromOneRun() throws {
        let pipeline = try tinyPipeline()
        #expect(pipeline.loadedModelIDs.isEmpty, "models load lazily")
        let analysis = try pipeline.analyze(imageBytes: scan)
        let spec = pipeline.manifest.models[0]
        #expect(pipeline.loadedModelIDs == pipeline.manifest.models.map(\.id).sorted())
        #expect(analysis.results.map(\.id) == pipeline.manifest.resultIDs)
        #expect(analysis.imageWidth == 61 && analysis.imageHeight == 45)

        let own = analysis.results[0]
        let sum = own.probabilities.reduce(0) { $0 + $1.probability }
        #expect(abs(sum - 1) < 1e-9)
        let top = own.probabilities.max { $0.probability < $1.probability }!
        #expect(own.prediction == top.label && own.confidence == top.probability)
        #expect(own.explainedLabel == own.prediction)

        // The derived binary reads the same softmax: P(positive) = 1 - P(negative labels).
        let derived = analysis.results[1]
        let derivedSpec = try #require(spec.derived?.first)
        let negative = derivedSpec.negative.reduce(0) { $0 + own.probability(of: $1)! }
        #expect(abs(derived.probability(of: derivedSpec.labels[1])! - (1 - negative)) < 1e-9)
        #expect(derived.explainedLabel == derivedSpec.labels[1])
        #expect(derived.prediction == (1 - negative >= 0.5 ? derivedSpec.labels[1] : derivedSpec.labels[0]))

        // Titles from the manifest where it has one (models/tiny: partial on purpose), the label otherwise.
        #expect(own.probabilities.map(\.title) == ["Alpha finding", "beta", "gamma"])
        #expect(derived.probabilities.map(\.title) == ["beta", "Anything but beta"])

        for result in analysis.results {
            #expect(result.gradCAM.width == 8 && result.gradCAM.height == 8)
            #expect(result.probabilities.count == 2 || result.task == .multiclass)
            let values = result.gradCAM.values
            #expect(values.allSatisfy { $0 >= 0 && $0 <= 1 })
            #expect(values.max()! > 0.99, "min-max normalised maps reach 1")
            #expect(values.min()! == 0)
        }
        #expect(analysis.timings.forward > 0 && analysis.timings.decode > 0)
    }

    /// The grey test model is NCHW, one channel, normalised, with a single sigmoid logit.
    @Test func singleLogitBinaryModelUsesSigmoidAndExplainsItsLogit() throws {
        let pipeline = try tinyPipeline()
        let spec = try #require(pipeline.manifest.models.first { $0.task == .binary })
        let analysis = try pipeline.analyze(imageBytes: scan)
        let result = try #require(analysis.results.first { $0.id == spec.id })
        #expect(result.probabilities.map(\.label) == spec.labels)
        let positive = try #require(result.probability(of: spec.labels[1]))
        #expect(abs(positive + result.probability(of: spec.labels[0])! - 1) < 1e-12)
        #expect(result.explainedLabel == spec.labels[1])
        #expect(result.prediction == spec.labels[positive >= 0.5 ? 1 : 0])
        #expect(result.confidence == max(positive, 1 - positive))
    }

    /// What the clinician saw is what is analysed: a file stored sideways with EXIF orientation 6 gives
    /// exactly the analysis of the upright pixels, and says that it was turned.
    @Test func exifOrientationIsAppliedBeforeAnalysisAndDisplay() throws {
        let pipeline = try tinyPipeline(render: true)
        let upright = syntheticScan(width: 61, height: 45)
        let sideways = upright.applying(.rotated90CounterClockwise)  // how a camera stores it for orientation 6
        let file = ImageBuilders.png(try ImageEncoder.png(sideways), inserting: [ImageBuilders.chunk("eXIf", ImageBuilders.tiff(orientation: 6))])
        let turned = try pipeline.analyze(imageBytes: file)
        let reference = try pipeline.analyze(imageBytes: try ImageEncoder.png(upright))
        #expect(turned.orientation == .rotated90Clockwise && reference.orientation == nil)
        #expect(turned.imageWidth == 61 && turned.imageHeight == 45)
        #expect(turned.results.map(\.probabilities) == reference.results.map(\.probabilities))
        #expect(turned.results.map(\.gradCAM.values) == reference.results.map(\.gradCAM.values))
        #expect(turned.scan?.bytes == reference.scan?.bytes, "the stored scan is upright too")
        let unturned = try pipeline.analyze(imageBytes: try ImageEncoder.png(sideways))
        #expect(unturned.results.map(\.probabilities) != reference.results.map(\.probabilities), "the test can fail")
    }

    @Test func sameInputGivesSameOutput() throws {
        let pipeline = try tinyPipeline()
        let a = try pipeline.analyze(imageBytes: scan), b = try pipeline.analyze(imageBytes: scan)
        #expect(a.results.map(\.probabilities) == b.results.map(\.probabilities))
        #expect(a.results.map(\.gradCAM) == b.results.map(\.gradCAM))
    }

    @Test func differentScansGiveDifferentExplanations() throws {
        let pipeline = try tinyPipeline()
        let other = try ImageEncoder.png(syntheticScan(width: 61, height: 45, seed: 4))
        let a = try pipeline.analyze(imageBytes: scan), b = try pipeline.analyze(imageBytes: other)
        #expect(a.results[0].gradCAM != b.results[0].gradCAM)
    }

    @Test func rendersScanAndOneOverlayPerResultAtDisplaySize() throws {
        let pipeline = try tinyPipeline(render: true)
        let big = try ImageEncoder.jpeg(syntheticScan(width: 800, height: 600), quality: 90)
        let analysis = try pipeline.analyze(imageBytes: big)
        let scan = try #require(analysis.scan)
        #expect((scan.width, scan.height) == (512, 384))
        #expect(ImageDecoder.sniff(scan.bytes) == .jpeg)
        let decoded = try ImageDecoder.decode(scan.bytes)
        #expect((decoded.width, decoded.height) == (512, 384))
        #expect(Set(analysis.overlays.keys) == Set(pipeline.manifest.resultIDs))
        for overlay in analysis.overlays.values {
            #expect(overlay.format == .webp && (overlay.width, overlay.height) == (512, 384))
            #expect(Array(overlay.bytes[8..<12]) == Array("WEBP".utf8))
        }
        #expect(analysis.timings.encode > 0)
    }

    @Test func displaySizeNeverEnlarges() {
        #expect(displaySize(width: 100, height: 50, maxSide: 512) == (100, 50))
        #expect(displaySize(width: 1024, height: 2048, maxSide: 512) == (256, 512))
    }

    @Test func threadsCanBeSet() {
        let before = TorchThreads.current
        #expect(TorchThreads.set(1) == 1)
        TorchThreads.set(before)
        #expect(TorchThreads.current == before)
    }
}

@Suite struct BadInputTests {
    let goodJPEG = try! ImageEncoder.jpeg(syntheticScan(width: 64, height: 48), quality: 90)

    func expectBadImage(_ bytes: [UInt8], _ kind: ImagingError.Kind) throws {
        let pipeline = try tinyPipeline()
        #expect {
            _ = try pipeline.analyze(imageBytes: bytes)
        } throws: { error in
            guard case .badImage(let e) = error as? AnalysisError else { return false }
            return e.kind == kind && !e.message.isEmpty
        }
        // The pipeline is still usable afterwards.
        #expect(try pipeline.analyze(imageBytes: goodJPEG).results.count == pipeline.manifest.resultIDs.count)
    }

    @Test func emptyFile() throws { try expectBadImage([], .empty) }
    @Test func textNamedJPEG() throws { try expectBadImage(Array("this is not an image\n".utf8), .unsupportedFormat) }
    @Test func truncatedJPEG() throws { try expectBadImage(Array(goodJPEG.prefix(goodJPEG.count / 2)), .corrupt) }

    @Test func pngWithBadCRC() throws {
        var png = try ImageEncoder.png(syntheticScan(width: 20, height: 20))
        png[29] ^= 0xFF  // last byte of the IHDR chunk's CRC
        try expectBadImage(png, .corrupt)
    }

    @Test func jpegClaimingGiantDimensions() throws {
        var jpeg = goodJPEG
        // Patch the baseline SOF0 frame header: FF C0, length(2), precision(1), height(2), width(2).
        let sof = try #require((0..<jpeg.count - 1).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        for offset in [sof + 5, sof + 7] { jpeg[offset] = 0x4E; jpeg[offset + 1] = 0x20 }  // 20000
        try expectBadImage(jpeg, .tooLarge)
    }
}

@Suite struct ModelProblemTests {
    func pipeline(manifestEdit: (inout ModelManifest) -> Void) throws -> AnalysisPipeline {
        var manifest = try ModelManifest.load(from: Repository.tinyManifest)
        manifestEdit(&manifest)
        return AnalysisPipeline(manifest: manifest)
    }

    func expectModelProblem(_ pipeline: AnalysisPipeline, _ kind: ModelError.Kind, mentioning text: String) {
        let scan = try! ImageEncoder.png(syntheticScan(width: 32, height: 32))
        #expect {
            _ = try pipeline.analyze(imageBytes: scan)
        } throws: { error in
            guard case .model(let e) = error as? AnalysisError else { return false }
            return e.kind == kind && e.message.contains(text)
        }
    }

    @Test func missingModelFile() throws {
        let p = try pipeline { $0.models[0].file = "does-not-exist.pt" }
        expectModelProblem(p, .missing, mentioning: "does-not-exist.pt")
    }

    @Test func corruptModelFile() throws {
        let dir = TemporaryFolder()
        let bad = dir.file("corrupt.pt", Array(repeating: 0x5A, count: 4096))
        let p = try pipeline { $0.models[0].file = bad.path }
        expectModelProblem(p, .corrupt, mentioning: "corrupt.pt")
    }

    @Test func truncatedModelFile() throws {
        let dir = TemporaryFolder()
        let good = try Data(contentsOf: Repository.root.appendingPathComponent("models/tiny/tiny.pt"))
        let cut = dir.file("cut.pt", Array(good.prefix(good.count / 2)))
        let p = try pipeline { $0.models[0].file = cut.path }
        expectModelProblem(p, .corrupt, mentioning: "cut.pt")
    }

    @Test func outputSizeDisagreesWithLabels() throws {
        let p = try pipeline { $0.models[0].labels.append("delta") }
        expectModelProblem(p, .wrongShape, mentioning: "returns 3 outputs")
        #expect(p.loadedModelIDs.isEmpty, "a model that failed its check is not kept")
    }

    @Test func inputShapeTheModelCannotTake() throws {
        let p = try pipeline { $0.models[0].input.layout = $0.models[0].input.layout == .nhwc ? .nchw : .nhwc }
        expectModelProblem(p, .wrongShape, mentioning: "does not accept input")
    }
}
