import Foundation
import Testing
import TestSupport

/// The server on the int8 manifest (`MEDISCOPE_MANIFEST=models/manifest-int8.json`) through real nginx:
/// it analyses, and GET /api/models and the printable report show the model's fidelity to fp32.
@Suite(.serialized) final class Int8ServingTests {
    let stack: Stack
    init() async throws {
        stack = try await Stack.start(settings: ["MANIFEST": Repository.root.appendingPathComponent("models/manifest-int8.json").path])
    }
    deinit { stack.stop() }

    @Test func int8ModelServesAndShowsItsFidelity() async throws {
        let upload = try await stack.upload(image: try Scans.jpeg)
        #expect(upload.status == 201, "\(String(decoding: upload.body, as: UTF8.self))")
        let id = try #require(upload.json?["id"] as? String)
        let results = try #require(upload.json?["results"] as? [[String: Any]])
        #expect(results.map { $0["id"] as? String } == ["brain-tumor-vgg16-int8", "tumor-presence"])

        let models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        let model = try #require(models.first)
        #expect(model["engine"] as? String == "onednn")
        #expect(model["loaded"] as? Bool == true)
        let fidelity = try #require(model["fidelity"] as? [String: Any])
        #expect(fidelity["accepted"] as? Bool == true)
        #expect(fidelity["minAgreement"] as? Double == 0.95)
        let report = try #require(fidelity["report"] as? [String: Any])
        for key in ["agreement", "maxProbabilityDifference", "gradCAMCorrelationMean", "gradCAMCorrelationWorst"] {
            #expect(report[key] is Double, "\(key)")
        }
        #expect((report["images"] as? Int ?? 0) >= 10)

        // The int8 model (oneDNN's quantised engine) preloads in the fork server without leaving a thread.
        let server = try #require(try LeanProcessTests.forkServer(stack))
        #expect(server["state"] as? String == "ready")
        #expect(LeanProcessTests.ProcessView(pid: Int32(try #require(server["pid"] as? Int))).threads == 1)

        let page = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        let footer = try #require(page.range(of: "<footer>").map { String(page[$0.lowerBound...]) })
        #expect(footer.contains("is int8-quantised, onednn. Against the fp32 model on"))
        #expect(footer.contains("Grad-CAM correlation mean"))
    }
}
