import Foundation
import MediscopeInference
import MediscopeStore
import Testing
import TestSupport

/// Heatmaps drawn when first looked at (issue 23), through real nginx and the real pools: the upload
/// answers with their URLs, the first GETs (two at once) draw them in the io pool with the bytes an
/// analysis drawing them at once makes, later GETs are nginx's, the report links them, a backup passes
/// its check without them, and a record stored with its overlays (before issue 23) is still served.
@Suite(.serialized) final class DrawnHeatmapStackTests {
    let stack: Stack
    init() async throws { stack = try await Stack.start() }
    deinit { stack.stop() }

    /// The overlays of `image` drawn during an analysis, in this process with the stack's manifest.
    static func eagerOverlays(_ image: Data, frame: Int? = nil) throws -> [String: [UInt8]] {
        let manifest = try ModelManifest.load(from: Repository.root.appendingPathComponent("models/manifest.json"))
        let analysis = try AnalysisPipeline(manifest: manifest).analyze(imageBytes: [UInt8](image), frame: frame, overlays: .now)
        return analysis.overlays.mapValues(\.bytes)
    }

    /// Fetches every heatmap of an upload's answer at once; each is the eager overlay, as WebP.
    static func expectHeatmapsAreTheEagerOnes(_ stack: Stack, _ answer: [String: Any], _ eager: [String: [UInt8]]) async throws {
        let results = try #require(answer["results"] as? [[String: Any]])
        #expect(results.count == eager.count && !eager.isEmpty)
        let fetches = try results.map { result -> (String, _Concurrency.Task<Stack.Response, any Error>) in
            let heatmap = try #require(result["heatmap"] as? [String: Any])
            #expect(heatmap["bytes"] is NSNull, "not drawn yet: its size is not known")
            let url = try #require(heatmap["url"] as? String)
            return (try #require(result["id"] as? String), _Concurrency.Task { try await stack.request("GET", url) })
        }
        for (id, fetch) in fetches {
            let r = try await fetch.value
            #expect(r.status == 200 && r.header("Content-Type") == "image/webp", "\(id): \(r.status)")
            #expect(r.header("Cache-Control") == "private, no-cache" && r.header("ETag") != nil)
            #expect([UInt8](r.body) == eager[id], "\(id): drawn when looked at = drawn during the analysis")
        }
    }

    @Test func heatmapsAreDrawnOnFirstLookThenServedLikeAnyImage() async throws {
        let jpeg = try Scans.jpeg
        let upload = try await stack.upload(image: jpeg, fields: ["patient_id": "P-DRAWN-1", "modality": "MRI"])
        #expect(upload.status == 201, "\(String(decoding: upload.body, as: UTF8.self))")
        let answer = try #require(upload.json)
        let id = try #require(answer["id"] as? String)
        let drawn = stack.varDir.appendingPathComponent("store/blobs/drawn")
        #expect(Self.files(under: drawn).isEmpty, "the upload draws nothing")
        let eager = try Self.eagerOverlays(jpeg)
        try await Self.expectHeatmapsAreTheEagerOnes(stack, answer, eager)
        #expect(Self.files(under: drawn).count == eager.count, "each drawn once and kept")

        // Kept: nginx sends the file, and answers a revalidation with 304.
        let first = try #require((answer["results"] as? [[String: Any]])?.first)
        let url = try #require((first["heatmap"] as? [String: Any])?["url"] as? String)
        let again = try await stack.request("GET", url)
        let firstID = try #require(first["id"] as? String)
        #expect(again.status == 200 && [UInt8](again.body) == eager[firstID])
        let etag = try #require(again.header("ETag"))
        #expect(try await stack.request("GET", url, headers: ["If-None-Match": etag]).status == 304)

        // The printable report links them.
        let report = try await stack.request("GET", "/analyses/\(id)/report")
        #expect(report.status == 200 && String(decoding: report.body, as: UTF8.self).contains("/api/analyses/\(id)/heatmaps/"))

        // A backup holds the lossless scan, not the drawn files, and passes its check.
        let backup = stack.dir.appendingPathComponent("backup-drawn")
        let made = try await runProcess(Repository.executable, ["store", "backup", backup.path], environment: stack.environment)
        #expect(made.status == 0, "\(made.stdout) \(made.stderr)")
        let verified = try await runProcess(Repository.executable, ["store", "verify", backup.path], environment: stack.environment)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(!FileManager.default.fileExists(atPath: backup.appendingPathComponent("blobs/drawn").path))

        // Deleted with its record.
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)").status == 204)
        #expect(Self.files(under: drawn).isEmpty)
    }

    /// A record stored with its overlays, as uploads made them before issue 23, is served as it was.
    @Test func aRecordWithStoredOverlaysIsStillServed() async throws {
        #expect(try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-EAGER-0"]).status == 201)
        let store = try SQLiteAnalysisStore(directory: stack.varDir.appendingPathComponent("store"))
        let organization = try #require(try store.records(afterId: nil, limit: 1).first?.organizationId)
        var old = makeAnalysis(org: organization, patientId: "P-EAGER-1")
        old.images[1] = ImageBlob.make(bytes: [UInt8](try Scans.data("scan_baseline.jpg")).prefix(4096).map { $0 }, contentType: "image/webp",
                                       width: 512, height: 512)
        old.results[0].heatmap = old.images[1].ref
        let record = try store.create(old)
        let heatmap = try await stack.request("GET", "/api/analyses/\(record.id)/heatmaps/\(record.results[0].id).webp")
        #expect(heatmap.status == 200 && [UInt8](heatmap.body) == old.images[1].bytes)
        let detail = try await stack.request("GET", "/api/analyses/\(record.id)")
        let bytes = ((detail.json?["results"] as? [[String: Any]])?.first?["heatmap"] as? [String: Any])?["bytes"] as? Int
        #expect(bytes == old.images[1].bytes.count)
    }

    static func files(under folder: URL) -> [String] {
        (FileManager.default.enumerator(atPath: folder.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".webp") }
    }
}
