import Foundation
import ImageTestKit
import MediscopeEncoding
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// Issue 22: the input check's image checks, feature check, verdicts and parameter files.
@Suite struct InputCheckTests {
    static let tinyModel = Repository.root.appendingPathComponent("models/tiny/tiny.pt")
    static let brainScope = """
        {"description": "2D brain MRI slices", "modalities": ["MR"], "bodyParts": ["BRAIN", "HEAD"], "slice": "2D", "greyscale": true}
        """

    /// A one-model manifest over the tiny test model (NHWC 32x32 RGB, `features` of 16 channels).
    static func tinyManifest(_ dir: TemporaryFolder, scope: String? = nil, inputCheck: (file: String, sha256: String)? = nil) throws -> ModelManifest {
        let scopeField = scope.map { "\"scope\": \($0)," } ?? ""
        let checkField = inputCheck.map { "\"inputCheck\": {\"file\": \"\($0.file)\", \"sha256\": \"\($0.sha256)\"}," } ?? ""
        let url = dir.file("manifest-\(UUID().uuidString).json", """
            {"version": 1, "models": [{"id": "tiny", "file": "\(tinyModel.path)", "task": "multiclass",
              "labels": ["alpha", "beta", "gamma"], \(scopeField) \(checkField)
              "input": {"width": 32, "height": 32, "layout": "NHWC", "color": "RGB", "resize": "bicubic",
                        "scale": 0.00392156862745098, "mean": [0, 0, 0], "std": [1, 1, 1]}}]}
            """)
        return try ModelManifest.load(from: url)
    }

    static func pipeline(_ manifest: ModelManifest) -> AnalysisPipeline {
        var options = PipelineOptions()
        options.renderImages = false
        return AnalysisPipeline(manifest: manifest, options: options)
    }

    /// A parameter file as models/fit_input_check.py writes it (format 1), and its sha256.
    static func parameterFile(_ dir: TemporaryFolder, name: String = "tiny.input-check.json", mean: [Float], upper: [Float],
                              threshold: Double, transform: String = "none") -> (file: String, sha256: String) {
        func b64(_ v: [Float]) -> String {
            Data(v.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }).base64EncodedString()
        }
        let text = """
            {"format": 1, "model": "tiny", "method": "mahalanobis", "transform": "\(transform)", "dimensions": \(mean.count),
             "threshold": \(threshold), "mean": "\(b64(mean))", "precisionUpper": "\(b64(upper))"}
            """
        _ = dir.file(name, text)
        return (name, SHA256Hex.digest(Array(text.utf8)))
    }

    /// The packed upper triangle of the identity: the distance is then the plain Euclidean norm.
    static func identityUpper(_ d: Int) -> [Float] {
        (0..<d).flatMap { i in (i..<d).map { $0 == i ? Float(1) : 0 } }
    }

    static let scan = try! ImageEncoder.png(syntheticScan(width: 200, height: 180))


    // MARK: Image checks, one synthetic input per reason

    static func colourful(width: Int, height: Int) -> PixelImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let v = UInt8((x * 255 / max(width - 1, 1) + (x * 7 + y * 13) % 17) % 256)
                px[(y * width + x) * 3] = v
                px[(y * width + x) * 3 + 1] = 40
                px[(y * width + x) * 3 + 2] = 255 - v
            }
        }
        return PixelImage(width: width, height: height, channels: 3, pixels: px)
    }

    static func grey(width: Int, height: Int, _ value: (Int, Int) -> Int) -> PixelImage {
        var px = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { px[y * width + x] = UInt8(clamping: value(x, y)) } }
        return PixelImage(width: width, height: height, channels: 1, pixels: px)
    }

    /// The synthetic inputs, each made to fail one image check and only it, by name (the test's arguments
    /// are these names: Swift Testing prints arguments, and a file's bytes would fill the log).
    static let failingInputs: [String: (code: String, bytes: @Sendable () throws -> [UInt8])] = [
        "64x64 scan": ("too_small", { try ImageEncoder.png(syntheticScan(width: 64, height: 64)) }),
        "mid grey": ("uniform", { try ImageEncoder.png(grey(width: 300, height: 300) { _, _ in 128 }) }),
        "black": ("uniform", { try ImageEncoder.png(grey(width: 300, height: 300) { _, _ in 0 }) }),
        "smooth gradient": ("low_information", { try ImageEncoder.png(grey(width: 256, height: 256) { x, _ in x }) }),
        "two grey levels": ("low_information", { try ImageEncoder.png(grey(width: 256, height: 256) { x, y in (x / 32 + y / 32) % 2 * 255 }) }),
        "colourful": ("colour", { try ImageEncoder.png(colourful(width: 240, height: 200)) }),
        "CT DICOM": ("modality", { HostileDicom.monochrome16(syntheticScan(width: 200, height: 200, channels: 1),
                                                             extra: [.text(0x0008, 0x0060, "CS", "CT")]) }),
        "chest DICOM": ("body_part", { HostileDicom.monochrome16(syntheticScan(width: 200, height: 200, channels: 1),
                                                                 extra: [.text(0x0018, 0x0015, "CS", "CHEST")]) }),
    ]

    /// Each image check's reason from a synthetic input made to fail it, and only it.
    @Test(arguments: failingInputs.keys.sorted())
    func imageCheckGivesItsReason(input: String) throws {
        let (code, make) = try #require(Self.failingInputs[input])
        let bytes = try make()
        let dir = TemporaryFolder()
        let pipeline = Self.pipeline(try Self.tinyManifest(dir, scope: Self.brainScope))
        let analysis = try pipeline.analyze(imageBytes: bytes)
        let check = analysis.inputCheck
        #expect(check.verdict == .outOfScope)
        #expect(check.reasons.map(\.code) == [code], "\(check.reasons)")
        #expect(check.reasons.allSatisfy { !$0.message.isEmpty })
        #expect(check.method == "image-checks" && check.score == nil && check.threshold == nil)
        #expect(!analysis.results.isEmpty, "an out-of-scope image is still analysed")
    }

    /// An exported slice often sits in a wide black margin: spread, entropy and detail are measured on the
    /// foreground box, so the margin does not read as "too little information". A dot is no foreground.
    @Test func aSliceInAWideBlackMarginIsMeasuredOnItsForeground() throws {
        let slice = syntheticScan(width: 200, height: 200, channels: 1)
        var pixels = [UInt8](repeating: 0, count: 1000 * 1000)
        for y in 0..<200 { for x in 0..<200 { pixels[(400 + y) * 1000 + 400 + x] = slice.pixels[y * 200 + x] } }
        let wide = ImageStatistics(PixelImage(width: 1000, height: 1000, channels: 1, pixels: pixels))
        let limits = ImageCheckLimits().resolved
        #expect(wide.entropyBits >= limits.minEntropyBits && wide.detail >= limits.minDetail && wide.greySpread >= limits.minGreySpread,
                "\(wide)")
        var dot = [UInt8](repeating: 0, count: 300 * 300)
        dot[150 * 300 + 150] = 255
        #expect(ImageStatistics(PixelImage(width: 300, height: 300, channels: 1, pixels: dot)).greySpread < limits.minGreySpread)
    }

    @Test func aScanThatPassesTheImageChecksWithoutAFeatureCheckIsNotChecked() throws {
        let dir = TemporaryFolder()
        let pipeline = Self.pipeline(try Self.tinyManifest(dir, scope: Self.brainScope))
        let check = try pipeline.analyze(imageBytes: Self.scan).inputCheck
        #expect(check.verdict == .notChecked)
        #expect(check.reasons.map(\.code) == [InputCheck.Code.noFeatureCheck])
        // A DICOM MR of the head passes the modality and body-part checks.
        let dicom = HostileDicom.monochrome16(syntheticScan(width: 200, height: 200, channels: 1),
                                              extra: [.text(0x0018, 0x0015, "CS", "HEAD")])
        #expect(try pipeline.analyze(imageBytes: dicom).inputCheck.verdict == .notChecked)
    }

    @Test func declaredModalityAndBodyPartAreChecked() throws {
        let dir = TemporaryFolder()
        let pipeline = Self.pipeline(try Self.tinyManifest(dir, scope: Self.brainScope))
        let ct = try pipeline.analyze(imageBytes: Self.scan, declared: InputDeclaration(modality: "CT")).inputCheck
        #expect(ct.verdict == .outOfScope && ct.reasons.map(\.code) == ["modality"])
        #expect(ct.reasons[0].message.contains("CT") && ct.reasons[0].message.contains("MR"))
        let chest = try pipeline.analyze(imageBytes: Self.scan, declared: InputDeclaration(bodyPart: "Chest")).inputCheck
        #expect(chest.verdict == .outOfScope && chest.reasons.map(\.code) == ["body_part"])
        // "MRI" is MR, and "head" is HEAD; free text that is no DICOM term is not judged.
        let mri = try pipeline.analyze(imageBytes: Self.scan, declared: InputDeclaration(modality: "MRI", bodyPart: "head")).inputCheck
        #expect(mri.verdict == .notChecked)
        for text in ["left temporal lobe", "CT of the chest", "Brain; ignore this"] {
            #expect(try pipeline.analyze(imageBytes: Self.scan, declared: InputDeclaration(bodyPart: text)).inputCheck.verdict == .notChecked, "\(text)")
        }
    }

    // MARK: Not checked

    @Test func aModelWithoutCheckParametersLoadsAndSaysNotChecked() throws {
        let pipeline = try tinyPipeline()
        #expect(pipeline.manifest.models.allSatisfy { $0.scope == nil && $0.inputCheck == nil })
        let analysis = try pipeline.analyze(imageBytes: Self.scan)
        #expect(analysis.inputCheck.verdict == .notChecked)
        #expect(analysis.inputCheck.reasons.map(\.code).allSatisfy { $0 == InputCheck.Code.notConfigured })
        #expect(analysis.inputCheck.score == nil && analysis.inputCheck.method == nil)
        // Even an image every check would refuse: nothing is declared, so nothing is claimed.
        let blank = try pipeline.analyze(imageBytes: try ImageEncoder.png(Self.grey(width: 300, height: 300) { _, _ in 128 }))
        #expect(blank.inputCheck.verdict == .notChecked)
    }

    // MARK: Feature check

    @Test func featureCheckScoresPooledFeaturesAndDecides() throws {
        let dir = TemporaryFolder()
        // Mean 0 and the identity: the score is the norm of the pooled features, as the shim returns them.
        let loose = Self.parameterFile(dir, name: "loose.json", mean: Array(repeating: 0, count: 16), upper: Self.identityUpper(16), threshold: 1e6)
        let manifest = try Self.tinyManifest(dir, scope: Self.brainScope, inputCheck: loose)
        let pipeline = Self.pipeline(manifest)
        let analysis = try pipeline.analyze(imageBytes: Self.scan)
        let check = analysis.inputCheck
        #expect(check.verdict == .inScope && check.reasons.isEmpty)
        #expect(check.method == "image-checks+mahalanobis" && check.threshold == 1e6)
        let (loaded, _) = try pipeline.model(manifest.models[0])
        let converted = try ImageDecoder.decode(Self.scan).converted(toChannels: 3)
        let output = try loaded.model.run(input: Preprocessor.tensor(from: converted, spec: manifest.models[0].input),
                                          shape: manifest.models[0].input.shape, targets: [])
        #expect(output.pooledFeatures.count == 16)
        let norm = output.pooledFeatures.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs((check.score ?? -1) - norm) < 1e-3, "score \(check.score ?? -1), norm \(norm)")

        // The same model, a threshold below that distance: out of scope, probabilities unchanged.
        let tight = Self.parameterFile(dir, name: "tight.json", mean: Array(repeating: 0, count: 16), upper: Self.identityUpper(16),
                                       threshold: norm / 2)
        let strict = try Self.pipeline(try Self.tinyManifest(dir, scope: Self.brainScope, inputCheck: tight)).analyze(imageBytes: Self.scan)
        #expect(strict.inputCheck.verdict == .outOfScope && strict.inputCheck.reasons.map(\.code) == ["unfamiliar"])
        #expect(strict.results.map(\.probabilities) == analysis.results.map(\.probabilities))

        // The root transform: sqrt(max(x, 0)) per feature before the distance.
        let rooted = Self.parameterFile(dir, name: "sqrt.json", mean: Array(repeating: 0, count: 16), upper: Self.identityUpper(16),
                                        threshold: 1e6, transform: "sqrt")
        let sqrtCheck = try Self.pipeline(try Self.tinyManifest(dir, scope: Self.brainScope, inputCheck: rooted))
            .analyze(imageBytes: Self.scan).inputCheck
        let sumPositive = output.pooledFeatures.reduce(0.0) { $0 + max(0, Double($1)) }
        #expect(sqrtCheck.method == "image-checks+mahalanobis-sqrt" && abs((sqrtCheck.score ?? -1) - sumPositive.squareRoot()) < 1e-3)
    }

    @Test func parametersOfTheWrongDimensionAreRefused() throws {
        let dir = TemporaryFolder()
        let file = Self.parameterFile(dir, mean: Array(repeating: 0, count: 8), upper: Self.identityUpper(8), threshold: 10)
        let manifest = try Self.tinyManifest(dir, inputCheck: file)
        #expect {
            _ = try Self.pipeline(manifest).model(manifest.models[0])
        } throws: { error in
            guard let e = error as? ModelError, e.kind == .wrongShape else { return false }
            return e.message.contains("fitted on 8 features") && e.message.contains("16 channels")
        }
    }

    @Test func aTamperedParameterFileIsRefusedAtLoad() throws {
        let dir = TemporaryFolder()
        let file = Self.parameterFile(dir, mean: Array(repeating: 0, count: 16), upper: Self.identityUpper(16), threshold: 10)
        let url = dir.appending(file.file)
        // The threshold raised from 10 to 90 after fitting: same size, one character.
        let tampered = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"threshold\": 10", with: "\"threshold\": 90")
        try tampered.write(to: url, atomically: true, encoding: .utf8)
        let manifest = try Self.tinyManifest(dir, scope: Self.brainScope, inputCheck: file)
        #expect {
            _ = try Self.pipeline(manifest).analyze(imageBytes: Self.scan)
        } throws: { error in
            guard let e = error as? AnalysisError, case .model(let m) = e, m.kind == .refused else { return false }
            return m.message.contains("tiny is refused") && m.message.contains(file.sha256)
                && m.message.contains(SHA256Hex.digest(Array(tampered.utf8))) && m.message.contains(file.file)
        }
        // A missing file is named too; a checksum that is not one is an invalid manifest.
        try FileManager.default.removeItem(at: url)
        #expect { _ = try Self.pipeline(manifest).model(manifest.models[0]) } throws: { error in
            (error as? ModelError)?.kind == .missing && "\(error)".contains(file.file)
        }
        #expect { _ = try Self.tinyManifest(dir, inputCheck: (file.file, "abc")) } throws: { error in
            (error as? ModelError)?.kind == .invalidManifest && "\(error)".contains("inputCheck.sha256")
        }
    }

    // MARK: The verdict value

    @Test func verdictsCombineAcrossModelsAndEncodeEveryKey() throws {
        typealias R = InputCheck.Reason
        let inScope = InputCheck(verdict: .inScope, score: 10, threshold: 50, method: "image-checks+mahalanobis-sqrt")
        let out = InputCheck(verdict: .outOfScope, reasons: [R(code: "colour", message: "In colour.")], score: 40, threshold: 50,
                             method: "image-checks+mahalanobis-sqrt")
        let notChecked = InputCheck(verdict: .notChecked, reasons: [R(code: "not_configured", message: "None.")])
        let both = InputCheck.combine([("a", inScope), ("b", out)])
        #expect(both.verdict == .outOfScope && both.reasons == [R(code: "colour", message: "b: In colour.")])
        #expect(both.score == 40 && both.threshold == 50, "the model nearest its threshold")
        #expect(InputCheck.combine([("a", inScope), ("c", notChecked)]).verdict == .notChecked)
        #expect(InputCheck.combine([("a", inScope), ("b", inScope)]).verdict == .inScope)
        #expect(InputCheck.combine([("a", out)]) == out, "one model: its own verdict, reasons unprefixed")

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(notChecked), as: UTF8.self)
        #expect(json == #"{"method":null,"reasons":[{"code":"not_configured","message":"None."}],"score":null,"threshold":null,"verdict":"not_checked"}"#)
        #expect(try JSONDecoder().decode(InputCheck.self, from: encoder.encode(out)) == out)
    }
}
