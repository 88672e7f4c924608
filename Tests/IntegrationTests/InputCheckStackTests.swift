import Foundation
import ImageTestKit
import MediscopeImaging
import Testing

/// Issue 22 through real nginx, the real pool and libtorch: every analysis carries `inputCheck` in the 201,
/// GET and the list; an out-of-scope image keeps its numbers but its printed report and draft lead with
/// the warning; /api/metrics counts analyses by verdict and reason.
@Suite(.serialized) final class InputCheckStackTests {
    let stack: Stack
    init() async throws { stack = try await Stack.start() }
    deinit { stack.stop() }

    /// A mid-grey PNG: a blank image any viewer would show as nothing.
    static var blank: Data {
        get throws {
            let image = PixelImage(width: 320, height: 320, channels: 1, pixels: [UInt8](repeating: 128, count: 320 * 320))
            return Data(try ImageEncoder.png(image))
        }
    }

    /// One of the held-out brain MRI slices the fidelity report measures (models/fetch_scans.py).
    static var slice: Data {
        get throws {
            let folder = Stack.root.appendingPathComponent("models/cache/evaluation")
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".jpg") }.sorted()
            let name = try #require(names.first, "run `make model-int8` first (models/fetch_scans.py)")
            return try Data(contentsOf: folder.appendingPathComponent(name))
        }
    }

    func check(_ json: [String: Any]?) throws -> [String: Any] {
        try #require(json?["inputCheck"] as? [String: Any], "no inputCheck in \(String(describing: json?.keys))")
    }

    func metric(_ series: String) async throws -> Double {
        let text = String(decoding: try await stack.request("GET", "/api/metrics").body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.dropFirst(series.count + 1)) } ?? 0
    }

    @Test func aBlankImageIsOutOfScopeEverywhereItIsShown() async throws {
        let host = "host=\"\(Stack.hostName)\""
        let outBefore = try await metric("mediscope_input_checks_total{\(host),verdict=\"out_of_scope\"}")
        let uniformBefore = try await metric("mediscope_input_check_reasons_total{\(host),reason=\"uniform\"}")

        let created = try await stack.upload(image: try Self.blank, filename: "blank.png")
        #expect(created.status == 201)
        let check = try check(created.json)
        #expect(check["verdict"] as? String == "out_of_scope")
        let reasons = try #require(check["reasons"] as? [[String: Any]])
        #expect(reasons.contains { $0["code"] as? String == "uniform" && ($0["message"] as? String)?.isEmpty == false })
        #expect(check.keys.sorted() == ["method", "reasons", "score", "threshold", "verdict"])
        // The numbers are kept, unchanged by the verdict: a result per model with its probabilities.
        let results = try #require(created.json?["results"] as? [[String: Any]])
        #expect(!results.isEmpty && results.allSatisfy { ($0["probabilities"] as? [Any])?.isEmpty == false })

        let id = try #require(created.json?["id"] as? String)
        let read = try await stack.request("GET", "/api/analyses/\(id)")
        #expect(NSDictionary(dictionary: try self.check(read.json)) == NSDictionary(dictionary: check), "GET serves what 201 did")
        let list = try #require(try await stack.request("GET", "/api/analyses").json?["items"] as? [[String: Any]])
        let listed = try #require(list.first { $0["id"] as? String == id })
        #expect(try self.check(listed)["verdict"] as? String == "out_of_scope")

        let page = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        #expect(page.contains(InputCheck.warning), "the printed report carries the warning")
        #expect(page.contains("class=\"findings muted\""))

        // No LLM is configured: the template's draft leads with the warning.
        let draft = try await stack.draft(id)
        #expect((draft["text"] as? String)?.hasPrefix("WARNING: \(InputCheck.warning)") == true, "\(draft["text"] ?? "")")

        #expect(try await metric("mediscope_input_checks_total{\(host),verdict=\"out_of_scope\"}") == outBefore + 1)
        #expect(try await metric("mediscope_input_check_reasons_total{\(host),reason=\"uniform\"}") == uniformBefore + 1)
    }

    @Test func aBrainMRISliceIsInScopeUnlessDeclaredOtherwise() async throws {
        let host = "host=\"\(Stack.hostName)\""
        let inBefore = try await metric("mediscope_input_checks_total{\(host),verdict=\"in_scope\"}")
        let created = try await stack.upload(image: try Self.slice, fields: ["patient_id": "P-IC-1", "modality": "MRI", "body_part": "BRAIN"])
        #expect(created.status == 201)
        let check = try check(created.json)
        #expect(check["verdict"] as? String == "in_scope", "\(check)")
        #expect((check["reasons"] as? [Any])?.isEmpty == true)
        #expect(check["method"] as? String == "image-checks+mahalanobis-sqrt")
        let score = try #require(check["score"] as? Double), threshold = try #require(check["threshold"] as? Double)
        #expect(score < threshold)
        #expect(try await metric("mediscope_input_checks_total{\(host),verdict=\"in_scope\"}") == inBefore + 1)
        let id = try #require(created.json?["id"] as? String)
        let page = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        #expect(!page.contains(InputCheck.warning))

        // The same slice declared as CT (the form's modality) is not what the model was made for.
        let ct = try await stack.upload(image: try Self.slice, fields: ["patient_id": "P-IC-2", "modality": "CT"])
        #expect(ct.status == 201)
        let ctCheck = try self.check(ct.json)
        #expect(ctCheck["verdict"] as? String == "out_of_scope")
        #expect((ctCheck["reasons"] as? [[String: Any]])?.map { $0["code"] as? String } == ["modality"])
        let probabilities = { (json: [String: Any]?) in NSArray(array: (json?["results"] as? [[String: Any]])?.map { $0["probabilities"] ?? "" } ?? []) }
        #expect(probabilities(ct.json).count > 0 && probabilities(ct.json) == probabilities(created.json), "the verdict never changes the numbers")
    }
}
