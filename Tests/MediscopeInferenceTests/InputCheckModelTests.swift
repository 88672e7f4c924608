import Foundation
import ImageTestKit
import MediscopeEncoding
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// The default models (`make model`, `make model-int8`, `make model-input-check`'s committed parameters)
/// on real slices, and the server's verdicts against what models/fit_input_check.py measured.
@Suite(.serialized) struct InputCheckModelTests {
    static let evaluation = Repository.root.appendingPathComponent("models/cache/evaluation")
    static let int8Manifest = Repository.root.appendingPathComponent("models/manifest-int8.json")

    struct Report: Decodable {
        struct Row: Decodable {
            var name: String
            var file: String
            var split: String
            var score: Double
            var reasons: [String]
            var statistics: [String: Double]
        }
        struct Images: Decodable {
            var heldOut: [Row]
            /// The held-out slices with viewer text, in a wide margin, zoomed in (measured, never setting the threshold).
            var heldOutExported: [Row]
            var lowResolution: [Row]
            var outOfScope: [Row]
        }
        var threshold: Double
        var limits: [String: Double]
        var images: Images
    }

    static func report(_ manifest: ModelManifest) throws -> Report {
        let spec = manifest.models[0]
        let params = try #require(manifest.inputCheckURL(of: spec))
        let name = params.lastPathComponent.replacingOccurrences(of: ".input-check.json", with: ".input-check-fidelity.json")
        return try JSONDecoder().decode(Report.self, from: Data(contentsOf: params.deletingLastPathComponent().appendingPathComponent(name)))
    }

    static func pipeline(_ manifest: ModelManifest) -> AnalysisPipeline { InputCheckTests.pipeline(manifest) }

    /// The same manifest with `scope` and `inputCheck` taken out of every entry.
    static func unchecked(_ manifest: ModelManifest) -> ModelManifest {
        var m = manifest
        for i in m.models.indices { m.models[i].scope = nil; m.models[i].inputCheck = nil }
        return m
    }

    func evaluationSlices() throws -> [URL] {
        let urls = try FileManager.default.contentsOfDirectory(at: Self.evaluation, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "jpg" }.sorted { $0.path < $1.path }
        #expect(urls.count == 17, "run `make model-int8` (models/fetch_scans.py) first")
        return urls
    }

    @Test(arguments: ["models/manifest.json", "models/manifest-int8.json"])
    func theEvaluationSlicesStayInScopeWithUnchangedProbabilities(_ path: String) throws {
        let manifest = try ModelManifest.load(from: Repository.root.appendingPathComponent(path))
        #expect(manifest.models.allSatisfy { $0.scope != nil && $0.inputCheck != nil })
        let checked = Self.pipeline(manifest), plain = Self.pipeline(Self.unchecked(manifest))
        let report = try Self.report(manifest)
        var worst = 0.0
        for url in try evaluationSlices() {
            let bytes = [UInt8](try Data(contentsOf: url))
            let a = try checked.analyze(imageBytes: bytes), b = try plain.analyze(imageBytes: bytes)
            #expect(a.inputCheck.verdict == .inScope, "\(url.lastPathComponent): \(a.inputCheck.reasons)")
            #expect(a.results.map(\.probabilities) == b.results.map(\.probabilities), "\(url.lastPathComponent)")
            #expect(b.inputCheck.verdict == .notChecked)
            // The server's distance is the one the fitting tool measured (JPEG decoders differ by a little).
            let score = try #require(a.inputCheck.score)
            let row = try #require(report.images.heldOut.first { $0.name == url.lastPathComponent })
            #expect(abs(score - row.score) <= 0.02 * row.score, "\(url.lastPathComponent): \(score) vs \(row.score)")
            #expect(abs((a.inputCheck.threshold ?? 0) - report.threshold) <= 0.0005)
            worst = max(worst, score / report.threshold)
        }
        print("\(path): evaluation slices at most \(String(format: "%.0f", worst * 100))% of the threshold \(report.threshold)")
    }

    /// Every image models/fit_input_check.py measured (saved losslessly in models/cache/input-check) gets the
    /// same reasons from the server: the fidelity report's rates are the server's.
    @Test func theServerReachesTheReportedVerdicts() throws {
        let manifest = try ModelManifest.load(from: Repository.defaultManifest)
        let report = try Self.report(manifest)
        let folder = Repository.root.appendingPathComponent("models/cache/input-check")
        let pipeline = Self.pipeline(manifest)
        let resolved = (manifest.models[0].scope?.imageChecks ?? ImageCheckLimits()).resolved
        #expect(report.limits["minImageSide"] == Double(resolved.minImageSide) && report.limits["minGreySpread"] == resolved.minGreySpread
                && report.limits["minEntropyBits"] == resolved.minEntropyBits && report.limits["minDetail"] == resolved.minDetail
                && report.limits["maxColourFraction"] == resolved.maxColourFraction, "Python's limits are Swift's")
        var compared = 0, disagreements: [String] = []
        for row in report.images.heldOut + report.images.heldOutExported + report.images.lowResolution + report.images.outOfScope {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(row.file)))
            let check = try pipeline.analyze(imageBytes: bytes).inputCheck
            let statistics = ImageStatistics(try ImageDecoder.decode(bytes))
            for (key, value) in [("greySpread", statistics.greySpread), ("entropyBits", statistics.entropyBits),
                                 ("detail", statistics.detail), ("colourFraction", statistics.colourFraction)] {
                #expect(abs(value - (row.statistics[key] ?? .nan)) < 0.002, "\(row.file) \(key): \(value) vs \(row.statistics[key] ?? .nan)")
            }
            // A score within 0.5% of the threshold may fall either side of it; none does in practice.
            let nearThreshold = abs(row.score - report.threshold) < 0.005 * report.threshold
            if Set(check.reasons.map(\.code)) != Set(row.reasons) && !nearThreshold {
                disagreements.append("\(row.file): server \(check.reasons.map(\.code)), report \(row.reasons)")
            }
            compared += 1
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
        #expect(compared >= 140)
    }

    /// The issue's "done when": a blank image, a photo and a document, each `out_of_scope` with reasons, from
    /// the command line in one run.
    @Test func theCLISaysOutOfScopeForABlankImageAPhotoAndADocument() async throws {
        let dir = TemporaryFolder()
        let blank = dir.appending("blank.png")
        try Data(try ImageEncoder.png(InputCheckTests.grey(width: 400, height: 400) { _, _ in 200 })).write(to: blank)
        let folder = Repository.root.appendingPathComponent("models/cache/input-check/out-of-scope")
        let photo = folder.appendingPathComponent("photo__astronaut.png"), document = folder.appendingPathComponent("document__page.png")
        let run = try await runProcess(Repository.executable, ["analyze", "--json", "--no-images", "--threads", "2",
                                                   "--manifest", Repository.defaultManifest.path, blank.path, photo.path, document.path])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let images = try #require(json?["images"] as? [[String: Any]])
        #expect(images.count == 3)
        for image in images {
            let check = try #require(image["inputCheck"] as? [String: Any])
            let reasons = (check["reasons"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
            #expect(check["verdict"] as? String == "out_of_scope" && !reasons.isEmpty, "\(image["path"] ?? ""): \(check)")
            #expect(!((image["results"] as? [Any]) ?? []).isEmpty, "the numbers are still given")
        }
        #expect((images.first?["inputCheck"] as? [String: Any]).flatMap { ($0["reasons"] as? [[String: Any]])?.first?["code"] as? String } == "uniform")
    }

    @Test func theCLIPrintsTheInputCheck() async throws {
        let url = try #require(try evaluationSlices().first)
        let run = try await runProcess(Repository.executable, ["analyze", "--json", "--no-images", "--threads", "2",
                                                   "--manifest", Repository.defaultManifest.path, url.path])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let image = try #require((json?["images"] as? [[String: Any]])?.first)
        let check = try #require(image["inputCheck"] as? [String: Any])
        #expect(check["verdict"] as? String == "in_scope")
        #expect(check["method"] as? String == "image-checks+mahalanobis-sqrt")
        #expect((check["score"] as? Double ?? .infinity) < (check["threshold"] as? Double ?? 0))
        #expect((check["reasons"] as? [Any])?.isEmpty == true)
    }
}
