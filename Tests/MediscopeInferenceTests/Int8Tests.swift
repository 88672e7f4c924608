import Foundation
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// The int8 model (`make model-int8`) through the real shim and libtorch, against the fp32 model.
@Suite(.serialized) struct Int8Tests {
    static let int8Manifest = Repository.root.appendingPathComponent("models/manifest-int8.json")
    static let int8File = Repository.root.appendingPathComponent("models/brain_tumor_vgg16_int8.pt")
    static let fp32File = Repository.root.appendingPathComponent("models/brain_tumor_vgg16.pt")
    /// Per-map Grad-CAM correlation with fp32 that every test scan must reach, and the mean over all maps.
    static let worstCorrelation = 0.75
    static let meanCorrelation = 0.95

    func pipeline(_ manifest: URL) throws -> AnalysisPipeline {
        var options = PipelineOptions()
        options.renderImages = false
        return AnalysisPipeline(manifest: try ModelManifest.load(from: manifest), options: options)
    }

    /// The test scans `make reference` writes, and the evaluation MRI slices `make model-int8` fetched.
    func scans() throws -> [URL] {
        let folders = [Repository.reference.appendingPathComponent("scans"), Repository.root.appendingPathComponent("models/cache/evaluation")]
        let urls = folders.flatMap { (try? FileManager.default.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil)) ?? [] }
            .filter { ["jpg", "png"].contains($0.pathExtension) }.sorted { $0.path < $1.path }
        #expect(urls.count >= 20, "run `make reference` and `make model-int8` first")
        return urls
    }

    @Test func int8PredictsAsFP32AndItsGradCAMFollows() throws {
        let fp32 = try pipeline(Repository.defaultManifest), int8 = try pipeline(Self.int8Manifest)
        var correlations: [Double] = []
        for url in try scans() {
            let bytes = [UInt8](try Data(contentsOf: url))
            let a = try fp32.analyze(imageBytes: bytes), b = try int8.analyze(imageBytes: bytes)
            #expect(a.results.count == 2 && b.results.count == 2)
            for (x, y) in zip(a.results, b.results) {
                #expect(x.prediction == y.prediction, "\(url.lastPathComponent) \(x.id): fp32 \(x.prediction), int8 \(y.prediction)")
                for p in x.probabilities {
                    #expect(abs(p.probability - (y.probability(of: p.label) ?? .nan)) < 0.02, "\(url.lastPathComponent) P(\(p.label))")
                }
                let r = correlation(x.gradCAM.values, y.gradCAM.values)
                correlations.append(r)
                #expect(r >= Self.worstCorrelation, "\(url.lastPathComponent) \(x.id): Grad-CAM correlation \(r)")
            }
        }
        let mean = correlations.reduce(0, +) / Double(correlations.count)
        print("int8 vs fp32: \(correlations.count) Grad-CAM maps, correlation mean \(mean), worst \(correlations.min() ?? .nan)")
        #expect(mean >= Self.meanCorrelation)
        #expect(int8.loadedModelIDs == ["brain-tumor-vgg16-int8"])
    }

    @Test func wrongEngineIsRefusedWithTheEngineNamed() throws {
        let dir = TemporaryFolder()
        func manifest(file: URL, engine: String?) -> URL {
            let engineField = engine.map { "\"engine\": \"\($0)\"," } ?? ""
            return dir.file("m-\(engine ?? "none")-\(file.lastPathComponent).json", """
                {"version": 1, "models": [{"id": "m", "file": "\(file.path)", \(engineField) "task": "multiclass",
                  "labels": ["glioma", "meningioma", "notumor", "pituitary"],
                  "input": {"width": 240, "height": 240, "layout": "NHWC", "color": "RGB", "resize": "bicubic",
                            "scale": 0.00392156862745098, "mean": [0, 0, 0], "std": [1, 1, 1]}}]}
                """)
        }
        let cases: [(URL, String?, String)] = [
            (Self.int8File, "qnnpack", "quantised for the `onednn` engine but the manifest names `qnnpack`"),
            (Self.int8File, nil, "quantised (int8) for the `onednn` engine but its manifest entry names no engine"),
            (Self.fp32File, "onednn", "names the quantised engine `onednn` but the model file is not quantised"),
            (Self.int8File, "fbgemm", "quantised for the `onednn` engine but the manifest names `fbgemm`"),
        ]
        for (file, engine, words) in cases {
            let m = try ModelManifest.load(from: manifest(file: file, engine: engine))
            #expect {
                _ = try AnalysisPipeline(manifest: m).model(m.models[0])
            } throws: { error in
                let message = (error as? ModelError)?.message ?? ""
                return message.contains(words) && message.contains(file.path)
            }
        }
    }

    @Test func modelBelowItsAgreementThresholdIsRefused() throws {
        let dir = TemporaryFolder()
        var report = try FidelityReport.load(from: Repository.root.appendingPathComponent("models/brain_tumor_vgg16_int8.fidelity.json"))
        report.agreement = 15.0 / 17.0
        _ = dir.file("low.fidelity.json", Array(try JSONEncoder().encode(report)))
        var text = try String(contentsOf: Self.int8Manifest, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"brain_tumor_vgg16_int8.pt\"", with: "\"\(Self.int8File.path)\"")
            .replacingOccurrences(of: "\"brain_tumor_vgg16_int8.fidelity.json\"", with: "\"low.fidelity.json\"")
        let m = try ModelManifest.load(from: dir.file("manifest.json", text))
        #expect {
            _ = try AnalysisPipeline(manifest: m).model(m.models[0])
        } throws: { error in
            guard let e = error as? ModelError, e.kind == .refused else { return false }
            return e.message.contains("brain-tumor-vgg16-int8 is refused") && e.message.contains("88.2%")
                && e.message.contains("minimum of 95.0%")
        }
        // The same model with its own report loads.
        let good = try ModelManifest.load(from: Self.int8Manifest)
        #expect(try FidelityReport.checked(good.models[0], in: good)?.agreement ?? 0 >= 0.95)
    }
}

/// Pearson correlation of two equally long series.
func correlation(_ a: [Float], _ b: [Float]) -> Double {
    let x = a.map(Double.init), y = b.map(Double.init)
    let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for (u, v) in zip(x, y) { sxy += (u - mx) * (v - my); sxx += (u - mx) * (u - mx); syy += (v - my) * (v - my) }
    return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : (sxx == syy ? 1 : 0)
}
