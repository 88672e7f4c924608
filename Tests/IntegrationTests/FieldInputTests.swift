import Foundation
import ImageTestKit
import MediscopeImaging
import Testing

/// Inputs from the field through real nginx and the real pool (issue 9): patient text, form parameters,
/// decoder budgets, EXIF orientation. Each bad input: a 4xx problem, the worker alive, nothing stored.
@Suite(.serialized) final class FieldInputTests {
    let stack: Stack
    init() async throws { stack = try await Stack.start() }
    deinit { stack.stop() }

    /// A multipart body built byte for byte: any field bytes, any filename, fields given twice.
    func upload(_ parts: [(name: String, filename: String?, bytes: [UInt8])]) async throws -> Stack.Response {
        let boundary = "field-input-\(UUID().uuidString)"
        var body = Data()
        for part in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\""
            if let filename = part.filename {
                head += "; filename=\"\(filename.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""
                head += "\r\nContent-Type: application/octet-stream"
            }
            body.append(Data((head + "\r\n\r\n").utf8))
            body.append(Data(part.bytes))
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        return try await stack.request("POST", "/api/analyses", body: body, contentType: "multipart/form-data; boundary=\(boundary)")
    }

    func scanPart() throws -> (name: String, filename: String?, bytes: [UInt8]) { ("image", "scan.jpg", [UInt8](try Scans.jpeg)) }
    func text(_ name: String, _ value: String) -> (name: String, filename: String?, bytes: [UInt8]) {
        stack.remember([value])
        return (name, nil, Array(value.utf8))
    }

    func analysisCount() async throws -> Int {
        let r = try await stack.request("GET", "/api/analyses?limit=100")
        return (r.json?["items"] as? [Any])?.count ?? -1
    }

    func expectProblem(_ r: Stack.Response, _ status: Int, mentioning words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let detail = r.json?["detail"] as? String ?? ""
        #expect(r.status == status, "body: \(String(decoding: r.body, as: UTF8.self))", sourceLocation: sourceLocation)
        #expect(r.header("Content-Type")?.hasPrefix("application/problem+json") == true, sourceLocation: sourceLocation)
        for word in words { #expect(detail.contains(word), "detail: \(detail)", sourceLocation: sourceLocation) }
    }

    @Test func patientIdentityTextIsCheckedAndNormalised() async throws {
        let before = try await analysisCount()
        // A right-to-left override would show "BH-1234" as "BH-4321".
        expectProblem(try await upload([try scanPart(), text("patient_id", "BH-\u{202E}1234")]), 400,
                      mentioning: ["`patient_id`", "U+202E", "character 4"])
        // Latin-1 bytes are refused, never stored as "M\u{FFFD}ller".
        expectProblem(try await upload([try scanPart(), text("patient_id", "P-L1"), ("patient_name", nil, [0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72])]),
                      400, mentioning: ["`patient_name`", "UTF-8"])
        // One "character" of 7.5 million combining marks (15 MB).
        let heavy = Array("M".utf8) + Array(String(repeating: "\u{0301}", count: 7_500_000).utf8)
        expectProblem(try await upload([try scanPart(), text("patient_id", "P-HEAVY"), ("patient_name", nil, heavy)]), 400,
                      mentioning: ["`patient_name`", "too long"])
        // Two patient ids in one form: which one is the patient?
        expectProblem(try await upload([try scanPart(), text("patient_id", "P-TWICE-1"), text("patient_id", "P-TWICE-2")]), 400,
                      mentioning: ["`patient_id` more than once"])
        expectProblem(try await upload([try scanPart(), try scanPart(), text("patient_id", "P-TWO-IMAGES")]), 400,
                      mentioning: ["`image` more than once"])
        #expect(try await analysisCount() == before, "nothing was stored")

        // Decomposed on the way in, found by the composed form (and the other way round).
        let created = try await upload([try scanPart(), text("patient_id", "Mu\u{0308}ller-7")])
        #expect(created.status == 201)
        let stored = try #require((created.json?["patient"] as? [String: Any])?["patientId"] as? String)
        #expect(Array(stored.utf8) == Array("Müller-7".utf8))
        for search in ["M%C3%BCller-7", "Mu%CC%88ller-7"] {
            let found = try await stack.request("GET", "/api/analyses?patient_id=\(search)")
            #expect((found.json?["items"] as? [[String: Any]])?.count == 1, "search \(search)")
        }
        expectProblem(try await stack.request("GET", "/api/analyses?patient_id=BH-%E2%80%AE1234"), 400, mentioning: ["U+202E"])
        expectProblem(try await stack.request("GET", "/api/analyses?patient_id=M%FCller"), 400, mentioning: ["UTF-8"])
        expectProblem(try await stack.request("GET", "/api/analyses?patient_id=A&patient_id=B"), 400, mentioning: ["more than once"])
    }

    /// Chrome and curl send a quoted filename as it is; `;` and `=` inside the quotes are data.
    @Test func filenamesWithSemicolonsAndQuotesAreRead() async throws {
        for filename in ["MR; name=T2.jpg", #"T1 "axial" \ 3.jpg"#] {
            let r = try await upload([("image", filename, [UInt8](try Scans.jpeg)), text("patient_id", "P-FILENAME")])
            #expect(r.status == 201, "\(filename): \(String(decoding: r.body, as: UTF8.self))")
        }
    }

    @Test func decoderBudgetsAnswerFastAndTheWorkerStays() async throws {
        let worker = try #require(try stack.workers("inference").first?.pid)
        let bomb = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 10_000)
        expectProblem(try await upload([("image", "bomb.jpg", bomb), text("patient_id", "P-BOMB")]), 422,
                      mentioning: ["too many progressive scans"])
        let baseline = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 16, height: 16), quality: 90)
        var lossless = baseline
        let sof = try #require(ImageBuilders.segments(baseline).first { $0.marker == 0xC0 })
        lossless[sof.start + 1] = 0xC3
        expectProblem(try await upload([("image", "lossless.jpg", lossless), text("patient_id", "P-SOF3")]), 415,
                      mentioning: ["lossless JPEG", "not supported", "PNG"])
        #expect(try stack.workers("inference").first?.pid == worker, "the same worker is still serving")
        #expect(try stack.poolNumber("inference", "restarts") == 0)
        #expect(try await upload([try scanPart(), text("patient_id", "P-AFTER-BOMB")]).status == 201)
    }

    @Test func exifOrientationIsAppliedAndRecorded() async throws {
        let stored = ImageBuilders.pattern(width: 300, height: 200)
        let file = ImageBuilders.jpeg(try ImageEncoder.jpeg(stored, quality: 95), orientation: 6)
        let r = try await upload([("image", "phone.jpg", file), text("patient_id", "P-ROTATED")])
        #expect(r.status == 201)
        let json = try #require(r.json)
        #expect((json["image"] as? [String: Int]) == ["width": 200, "height": 300])
        let source = try #require(json["source"] as? [String: Any])
        #expect(source["format"] as? String == "jpeg" && source["exifOrientation"] as? Int == 6)
        #expect(source["orientationApplied"] as? String == "rotated 90° clockwise")
        let scanURL = try #require((json["scan"] as? [String: Any])?["url"] as? String)
        let scan = try await stack.request("GET", scanURL)
        let shown = try ImageDecoder.decode([UInt8](scan.body))
        #expect(shown.width == 200 && shown.height == 300, "the stored scan is upright")
    }
}
