import Foundation
import MediscopeDicomWrite
import Testing
import TestSupport

/// `GET /api/analyses/{id}/dicom/sr` and `/dicom/sc/{result}` through real nginx and the real pool: the SR and
/// each Secondary Capture pass dicom3tools' `dciodvfy` without an error, DCMTK's `dsrdump` reads the SR, pydicom
/// reads both; the SR holds the analysis's probabilities exactly, sits in a DICOM upload's study, is
/// UNVERIFIED until signed and then VERIFIED with the signer, the signed text and the earlier SR as
/// predecessor; the same request gives the same UIDs; another organisation gets 404; no log holds the patient.
@Suite(.serialized) final class DicomResultsTests {
    static let mrSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm"
    let stack: Stack
    let otherOrgToken: String
    let folder = TemporaryFolder("mediscope-dicom-results")
    var checks: DicomFileChecks { DicomFileChecks(folder: folder) }

    init() async throws {
        stack = try await Stack.start()
        otherOrgToken = try stack.token(forNewUser: "dicom-other", role: "clinician", organization: "other")
    }
    deinit { stack.stop() }

    /// dciodvfy's and pydicom's reading of a file.
    func check(_ bytes: Data, _ name: String) throws -> [String: Any] { try checks.check(bytes, name) }

    func expectResults(_ sr: [String: Any], _ analysis: [String: Any]) throws { try checks.expectResults(sr, analysis) }

    func download(_ path: String, _ what: String) async throws -> Data {
        // Written on request in the io pool (15 s limit): a 200 says it fitted; speed is the benchmarks' business.
        let r = try await stack.request("GET", path)
        #expect(r.status == 200, "\(what): \(r.status) \(String(decoding: r.body.prefix(300), as: UTF8.self))")
        #expect(r.header("Content-Type") == "application/dicom" && r.header("Cache-Control") == "no-store", "\(what)")
        #expect(r.header("Content-Disposition")?.hasPrefix("attachment; filename=\"mediscope-") == true, "\(what)")
        return r.body
    }

    /// The SR of `id` as pydicom reads it, after dciodvfy and dsrdump.
    func sr(_ id: String, _ what: String) async throws -> [String: Any] {
        let body = try await download("/api/analyses/\(id)/dicom/sr", what)
        let sr = try check(body, "\(what)-sr.dcm".replacingOccurrences(of: " ", with: "-"))
        let dump = try await runProcess(URL(fileURLWithPath: "/usr/bin/dsrdump"), [folder.url.appendingPathComponent("\(what)-sr.dcm".replacingOccurrences(of: " ", with: "-")).path], timeout: 60)
        #expect(dump.status == 0 && dump.stdout.contains("Comprehensive SR Document"), "dsrdump \(what): \(dump.stderr)")
        #expect(sr["SOPClassUID"] as? String == "1.2.840.10008.5.1.4.1.1.88.33")
        return sr
    }

    func send(_ path: String, text: String, base: Int) async throws -> Stack.Response {
        let body = try JSONSerialization.data(withJSONObject: ["text": text, "baseVersion": base])
        return try await stack.request("POST", path, body: body, contentType: "application/json")
    }

    @Test func aJpegAnalysisAsSrAndScThenSigned() async throws {
        let fields = ["patient_id": "P-DSR-5521", "patient_name": "Ysolde Srsample", "sex": "female", "age": "57", "modality": "MRI"]
        let upload = try await stack.upload(image: try Scans.jpeg, fields: fields)
        #expect(upload.status == 201)
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)

        let draft = try await stack.draft(id)
        let first = try await sr(id, "draft")
        #expect(first["VerificationFlag"] as? String == "UNVERIFIED" && first["CompletionFlag"] as? String == "PARTIAL")
        #expect(first["PatientID"] as? String == "P-DSR-5521" && (first["observers"] as? [Any])?.isEmpty == true)
        let study = try #require(first["StudyInstanceUID"] as? String)
        #expect(study.hasPrefix("2.25."), "a JPEG's study: derived from the analysis")
        try expectResults(first, analysis)
        let again = try await sr(id, "draft again")
        #expect(again["SOPInstanceUID"] as? String == first["SOPInstanceUID"] as? String, "the same request, the same UIDs")

        // Each heatmap as a Secondary Capture in the same study, a series of its own.
        var scSeries: Set<String> = []
        for result in analysis["results"] as? [[String: Any]] ?? [] {
            let rid = try #require(result["id"] as? String)
            let sc = try check(try await download("/api/analyses/\(id)/dicom/sc/\(rid)", "sc \(rid)"), "sc-\(rid).dcm")
            #expect(sc["SOPClassUID"] as? String == "1.2.840.10008.5.1.4.1.1.7" && sc["BurnedInAnnotation"] as? String == "YES")
            #expect(sc["StudyInstanceUID"] as? String == study && sc["SeriesInstanceUID"] as? String != first["SeriesInstanceUID"] as? String)
            #expect(sc["PhotometricInterpretation"] as? String == "RGB")
            let pixels = try #require(sc["pixels"] as? [Any])
            #expect(pixels[2] as? Int == 3 && pixels[3] as? Int == 8)
            scSeries.insert(sc["SeriesInstanceUID"] as? String ?? "")
        }
        #expect(scSeries.count == 1)
        #expect(try await stack.request("GET", "/api/analyses/\(id)/dicom/sc/no-such-result").status == 404)

        let path = "/api/analyses/\(id)/report"
        let base = try #require(draft["version"] as? Int)
        #expect(try await send(path + "/sign", text: "Signed for the DICOM SR test.", base: base).status == 200)
        let signed = try await sr(id, "signed")
        #expect(signed["VerificationFlag"] as? String == "VERIFIED" && signed["CompletionFlag"] as? String == "COMPLETE")
        let observers = try #require(signed["observers"] as? [[String]])
        #expect(observers.count == 1 && observers.first?[0] == "clinician" && observers.first?[1].isEmpty == false)
        let impression = (signed["content"] as? [[String: Any]] ?? []).first { $0["concept"] as? String == "Impression" }
        #expect(impression?["text"] as? String == "Signed for the DICOM SR test.")
        // The analysis's own SR (version 0, the one sent to the PACS with the heatmaps) is replaced, not the
        // draft's (drafts are never sent).
        #expect(signed["predecessors"] as? [String] == [DicomUID.derived(analysisId: id, kind: "sr", part: "0")], "the analysis's SR replaced")
        #expect(first["SOPInstanceUID"] as? String == DicomUID.derived(analysisId: id, kind: "sr", part: String(base)))
        #expect(signed["StudyInstanceUID"] as? String == study && signed["SOPInstanceUID"] as? String != first["SOPInstanceUID"] as? String)
        try expectResults(signed, analysis)

        for route in ["/api/analyses/\(id)/dicom/sr", "/api/analyses/\(id)/dicom/sc/\((analysis["results"] as? [[String: Any]])?.first?["id"] as? String ?? "")"] {
            let refused = try await stack.request("GET", route, auth: .bearer(otherOrgToken))
            #expect(refused.status == 404, "another organisation: \(route)")
        }
        let adminToken = try stack.token(forNewUser: "dicom-admin", role: "admin")
        let audit = try await stack.request("GET", "/api/audit?action=analysis.dicom&limit=1000", auth: .bearer(adminToken))
        let entries = try #require(audit.json?["entries"] as? [[String: Any]])
        #expect(entries.contains { $0["recordId"] as? String == id && $0["outcome"] as? String == "success" })
        #expect(entries.contains { $0["recordId"] as? String == id && $0["actorUsername"] as? String == "dicom-other" && $0["outcome"] as? String == "denied" })
    }

    @Test func aDicomUploadsSrAndScAreInItsStudy() async throws {
        let file = try Data(contentsOf: URL(fileURLWithPath: Self.mrSmall))
        stack.remember(["DCM-SR-1", "CompressedSamples", "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"])
        let upload = try await stack.upload(image: file, filename: "MR_small.dcm", fields: ["patient_id": "DCM-SR-1"])
        #expect(upload.status == 201, "\(String(decoding: upload.body, as: UTF8.self))")
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)
        let uid = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"   // MR_small.dcm's Study Instance UID

        let report = try await sr(id, "dicom")
        #expect(report["StudyInstanceUID"] as? String == uid && report["VerificationFlag"] as? String == "UNVERIFIED")
        try expectResults(report, analysis)
        for result in analysis["results"] as? [[String: Any]] ?? [] {
            let rid = try #require(result["id"] as? String)
            let sc = try check(try await download("/api/analyses/\(id)/dicom/sc/\(rid)", "dicom sc \(rid)"), "dicom-sc-\(rid).dcm")
            #expect(sc["StudyInstanceUID"] as? String == uid && sc["BurnedInAnnotation"] as? String == "YES")
        }
    }
}
