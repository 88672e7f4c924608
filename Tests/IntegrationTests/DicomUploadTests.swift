import Foundation
import ImageTestKit
import MediscopeImaging
import Testing

/// DICOM through real nginx and the real pool: the fields endpoint that pre-fills the form (audited,
/// nothing stored), the upload with a chosen frame, and the refusals.
@Suite(.serialized) final class DicomUploadTests {
    let stack: Stack
    let adminToken: String
    init() async throws {
        stack = try await Stack.start()
        adminToken = try stack.token(forNewUser: "dicom-auditor", role: "admin")
    }
    deinit { stack.stop() }

    /// A 64x48 MR slice with the patient and study fields a scanner writes.
    static func file() -> [UInt8] {
        let stored: [UInt16] = (0..<3072).map { (i: Int) -> UInt16 in UInt16((i % 64) * 300 + (i / 64) * 100) }
        return DicomBuilder.monochrome16(width: 64, height: 48, stored: stored, slope: 1, intercept: -1024,
                                         center: 2000, windowWidth: 6000, extra: [
            .text(0x0008, 0x0020, "DA", "20261120"), .text(0x0008, 0x103E, "LO", "T1 axial"),
            .text(0x0010, 0x0030, "DA", "19800101"), .text(0x0010, 0x0040, "CS", "F"), .text(0x0010, 0x1010, "AS", "046Y"),
            .text(0x0018, 0x0015, "CS", "BRAIN"), .text(0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.2.1143.10"),
        ])
    }

    /// Real files Debian's python3-pydicom ships (deploy/install-deps.sh installs it).
    static func shipped(_ name: String) throws -> [UInt8] {
        let path = "/usr/lib/python3/dist-packages/pydicom/data/test_files/\(name)"
        guard let data = FileManager.default.contents(atPath: path) else { throw StackError("\(path) is missing: install python3-pydicom") }
        return [UInt8](data)
    }

    func multipart(_ parts: [(String, String?, [UInt8])]) -> (Data, String) {
        let boundary = "dicom-\(UUID().uuidString)"
        var body = Data()
        for (name, filename, bytes) in parts {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\(filename.map { "; filename=\"\($0)\"" } ?? "")\r\n\r\n".utf8))
            body.append(Data(bytes))
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    @Test func theFieldsEndpointPrefillsTheFormAndIsAudited() async throws {
        stack.remember(["DCM-0001", "Test^Patient", "Test Patient"])
        let (body, type) = multipart([("file", "slice.dcm", Self.file())])
        let r = try await stack.request("POST", "/api/dicom/fields", body: body, contentType: type)
        #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
        let json = try #require(r.json)
        #expect(json["patientId"] as? String == "DCM-0001" && json["patientName"] as? String == "Test Patient")
        #expect(json["age"] as? Int == 46 && json["sex"] as? String == "female" && json["modality"] as? String == "MRI")
        #expect(json["bodyPart"] as? String == "Brain" && json["seriesDescription"] as? String == "T1 axial")
        #expect(json["numberOfFrames"] as? Int == 1 && json["rows"] as? Int == 48 && json["columns"] as? Int == 64)
        let preview = try #require(json["preview"] as? String)
        let png = try #require(Data(base64Encoded: String(preview.dropFirst("data:image/png;base64,".count))))
        #expect(preview.hasPrefix("data:image/png;base64,"))
        #expect(try ImageDecoder.decode([UInt8](png)).width == 64)
        #expect(r.header("Cache-Control") == "no-store")

        let audit = try await stack.request("GET", "/api/audit?action=dicom.read&limit=10", auth: .bearer(adminToken))
        let entries = try #require(audit.json?["entries"] as? [[String: Any]])
        #expect(entries.contains { $0["action"] as? String == "dicom.read" && $0["outcome"] as? String == "success" })
        #expect((try await stack.request("GET", "/api/analyses?patient_id=DCM-0001")).json?["items"] as? [Any] != nil)
        #expect(((try await stack.request("GET", "/api/analyses?patient_id=DCM-0001")).json?["items"] as? [Any])?.isEmpty == true,
                "reading the fields stores nothing")
    }

    @Test func aDicomUploadIsAnalysedWithItsWindowRecorded() async throws {
        let (body, type) = multipart([("image", "slice.dcm", Self.file()), ("patient_id", nil, Array("DCM-0001".utf8)),
                                      ("modality", nil, Array("MRI".utf8)), ("frame", nil, Array("1".utf8))])
        let r = try await stack.request("POST", "/api/analyses", body: body, contentType: type)
        #expect(r.status == 201, "\(String(decoding: r.body, as: UTF8.self))")
        let json = try #require(r.json)
        let source = try #require(json["source"] as? [String: Any])
        #expect(source["format"] as? String == "dicom")
        let dicom = try #require(source["dicom"] as? [String: Any])
        #expect(dicom["frame"] as? Int == 1 && dicom["windowCenter"] as? Double == 2000 && dicom["windowWidth"] as? Double == 6000)
        #expect((source["study"] as? [String: Any])?["seriesDescription"] as? String == "T1 axial")
        let scanURL = try #require((json["scan"] as? [String: Any])?["url"] as? String)
        #expect(try await stack.request("GET", scanURL).status == 200)
        // Its overlays are WebP, drawn when first looked at with the bytes of an analysis drawing them at once.
        try await DrawnHeatmapStackTests.expectHeatmapsAreTheEagerOnes(
            stack, json, try DrawnHeatmapStackTests.eagerOverlays(Data(Self.file()), frame: 0))
    }

    /// Found by review: the fields route answered 200 for files the upload then refused, and passed on
    /// values the form refuses.
    @Test func theFieldsRouteRefusesWhatTheUploadRefusesAndDropsUnusableValues() async throws {
        let jpeg = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 16, height: 16))
        let noPixels = DicomBuilder.file([.text(0x0008, 0x0060, "CS", "MR"), .text(0x0010, 0x0020, "LO", "DCM-NOPIX")])
        let bidiID = DicomBuilder.monochrome16(width: 8, height: 8, stored: [UInt16](repeating: 500, count: 64), slope: 1, intercept: 0,
                                               center: 500, windowWidth: 1000, extra: [.text(0x0010, 0x1010, "AS", "999Y")])
        var bidi = bidiID
        let idAt = try #require(bidiID.firstRange(of: Array("DCM-0001".utf8)))
        bidi.replaceSubrange(idAt, with: Array("BH\u{202E}123".utf8))  // 8 bytes for 8: the element length stays right
        for (bytes, status, words) in [(jpeg, 415, "not a DICOM file"), (noPixels, 422, "")] {
            let (body, type) = multipart([("file", "x.dcm", bytes)])
            let r = try await stack.request("POST", "/api/dicom/fields", body: body, contentType: type)
            #expect(r.status == status && (words.isEmpty || (r.json?["detail"] as? String ?? "").contains(words)),
                    "\(r.status) \(String(decoding: r.body, as: UTF8.self))")
        }
        #expect(bidi.count == bidiID.count, "same length: the element lengths stay right")
        let (body, type) = multipart([("file", "x.dcm", bidi)])
        let r = try await stack.request("POST", "/api/dicom/fields", body: body, contentType: type)
        #expect(r.status == 200)
        #expect(r.json?["patientId"] == nil && r.json?["age"] == nil, "a bidi override and age 999 are not pre-filled")
        #expect(r.json?["patientName"] as? String == "Test Patient")
    }

    @Test func aScannersFileIsAnalysed() async throws {
        let (body, type) = multipart([("image", "MR_small.dcm", try Self.shipped("MR_small.dcm")), ("patient_id", nil, Array("DCM-MR".utf8))])
        let r = try await stack.request("POST", "/api/analyses", body: body, contentType: type)
        #expect(r.status == 201, "\(String(decoding: r.body, as: UTF8.self))")
        #expect((r.json?["image"] as? [String: Int]) == ["width": 64, "height": 64])
    }

    @Test func unsupportedSyntaxesMissingFramesAndBrokenFilesAreClear4xx() async throws {
        // JPEG 2000 itself is decoded now (OpenJPEG); the same file declared as JPEG 2000 Part 2 (.92, same
        // length as .91) is a transfer syntax we do not decode.
        var j2k = try Self.shipped("JPEG2000.dcm")
        let syntax = try #require(j2k.firstRange(of: Array("1.2.840.10008.1.2.4.91".utf8)))
        j2k.replaceSubrange(syntax, with: Array("1.2.840.10008.1.2.4.92".utf8))
        for (bytes, frame, status, words) in [(j2k, nil as String?, 415, "JPEG 2000"), (Self.file(), "3", 422, "frame"),
                                              (Array(Self.file().prefix(400)), nil, 422, "cannot be decoded")] {
            var parts: [(String, String?, [UInt8])] = [("image", "x.dcm", bytes), ("patient_id", nil, Array("DCM-BAD".utf8))]
            if let frame { parts.append(("frame", nil, Array(frame.utf8))) }
            let (body, type) = multipart(parts)
            let r = try await stack.request("POST", "/api/analyses", body: body, contentType: type)
            let detail = r.json?["detail"] as? String ?? ""
            #expect(r.status == status && detail.contains(words), "\(r.status): \(detail)")
            #expect(r.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        }
        // Picking such a file in the dashboard says so at once, before the form is filled in.
        let (body, type) = multipart([("file", "x.dcm", j2k)])
        let fields = try await stack.request("POST", "/api/dicom/fields", body: body, contentType: type)
        #expect(fields.status == 415 && (fields.json?["detail"] as? String ?? "").contains("JPEG 2000"))
        #expect(try stack.poolNumber("inference", "restarts") == 0 && stack.poolNumber("io", "restarts") == 0)
    }
}
