import Foundation
import MediscopeServer
import Testing
import TestSupport
@testable import MediscopeApp

func multipart(_ fields: [(String, String)], file: (String, [UInt8])? = nil, boundary: String = "XyZ123") -> [UInt8] {
    var body = ""
    for (name, value) in fields {
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
    }
    var bytes = Array(body.utf8)
    if let (name, data) = file {
        bytes += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
        bytes += data + Array("\r\n".utf8)
    }
    return bytes + Array("--\(boundary)--\r\n".utf8)
}

@Suite struct MultipartFormTests {
    let type = "multipart/form-data; boundary=XyZ123"

    @Test func parsesFieldsAndBinaryFile() throws {
        let payload: [UInt8] = [0xFF, 0xD8, 0x0D, 0x0A, 0x2D, 0x2D, 0x00, 0xFF]  // CRLF and dashes inside the file
        let form = try MultipartForm.parse(contentType: type, body: multipart([("patient_id", "P-1"), ("note", "a\r\nb")],
                                                                             file: ("image", payload)))
        #expect(form.text("patient_id") == "P-1")
        #expect(form.text("note") == "a\r\nb")
        #expect(form.first("image")?.body == payload)
        #expect(form.first("image")?.filename == "a.jpg")
    }

    @Test func quotedBoundaryIsAccepted() throws {
        let form = try MultipartForm.parse(contentType: "multipart/form-data; boundary=\"XyZ123\"", body: multipart([("a", "1")]))
        #expect(form.text("a") == "1")
    }

    @Test(arguments: [
        (nil as String?, 415), ("application/json", 415), ("multipart/form-data", 400), ("multipart/form-data; boundary=", 400),
    ])
    func contentTypeProblems(type: String?, status: Int) {
        #expect { try MultipartForm.parse(contentType: type, body: multipart([("a", "1")])) } throws: {
            ($0 as? Problem)?.status == status
        }
    }

    @Test func emptyTruncatedAndUnterminatedBodiesAreRefused() {
        let whole = multipart([("patient_id", "P-1")], file: ("image", Array(repeating: 7, count: 500)))
        for body in [[], Array(whole.prefix(whole.count / 2)), Array(whole.dropLast(8)), Array("no boundary here".utf8)] {
            #expect { try MultipartForm.parse(contentType: type, body: body) } throws: { ($0 as? Problem)?.status == 400 }
        }
    }

    /// vapor/multipart-kit 4.7.1 traps on this (a header-name byte >= 0x80); we answer 400.
    @Test func nonASCIIHeaderNameDoesNotCrash() {
        var body = Array("--XyZ123\r\n".utf8) + [0xC3, 0xA9] + Array(": x\r\n\r\nvalue\r\n--XyZ123--\r\n".utf8)
        #expect(throws: Problem.self) { try MultipartForm.parse(contentType: type, body: body) }
        body = Array("--XyZ123\r\nContent-Disposition: form-data; name=\"a\"\r\nX-\u{e9}: 1\r\n\r\nv\r\n--XyZ123--".utf8)
        #expect { try MultipartForm.parse(contentType: type, body: body) } throws: { ($0 as? Problem)?.status == 400 }
    }

    /// RFC 7578 4.7: a form's file in base64 (or quoted-printable) is a 400 that says why, not an image the
    /// decoder refuses; binary, 8bit and 7bit are the bytes as sent.
    @Test func aTransferEncodingOtherThanBinaryIsRefusedWithItsName() throws {
        func body(_ encoding: String) -> [UInt8] {
            Array("--XyZ123\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Transfer-Encoding: \(encoding)\r\n\r\n/9j/4AAQ\r\n--XyZ123--\r\n".utf8)
        }
        for encoding in ["base64", "Quoted-Printable"] {
            #expect { try MultipartForm.parse(contentType: type, body: body(encoding)) } throws: {
                let problem = $0 as? Problem
                return problem?.status == 400 && problem?.detail.contains(encoding.lowercased()) == true
            }
        }
        for encoding in ["binary", "8BIT", "7bit"] {
            #expect(try MultipartForm.parse(contentType: type, body: body(encoding)).first("image")?.body == Array("/9j/4AAQ".utf8))
        }
        // multipart/related (STOW-RS) keeps the part and says why for it alone: the others may be stored.
        let related = try MultipartForm.parseRelated(contentType: #"multipart/related; type="application/dicom"; boundary=XyZ123"#,
                                                     type: "application/dicom", body: body("base64"), maxParts: 10)
        #expect(related.parts.first?.transferEncoding == "base64")
        #expect(related.parts.first?.unsupportedTransferEncoding?.contains("base64") == true)
    }

    @Test func partWithoutHeadersAndPreambleAreHandled() throws {
        let body = Array("preamble\r\n--XyZ123\r\n\r\nraw\r\n--XyZ123--".utf8)
        let form = try MultipartForm.parse(contentType: type, body: body)
        #expect(form.parts.count == 1 && form.parts[0].name == "" && form.parts[0].body == Array("raw".utf8))
    }

    @Test func findLocatesNeedles() {
        let hay = Array("abcabcabd".utf8)
        #expect(MultipartForm.find(Array("abd".utf8), in: hay, from: 0) == 6)
        #expect(MultipartForm.find(Array("abc".utf8), in: hay, from: 1) == 3)
        #expect(MultipartForm.find(Array("abd".utf8), in: hay, from: 0, limit: 8) == nil)
        #expect(MultipartForm.find(Array("zz".utf8), in: hay, from: 0) == nil)
    }

    /// `whole` with 1 to 6 random bytes changed, removed or inserted (boundary characters), and a quarter of
    /// the time cut short.
    static func corrupted(_ whole: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var body = whole
        for _ in 0..<Int(rng.next() % 6 + 1) {
            let i = Int(rng.next() % UInt64(body.count))
            switch rng.next() % 3 {
            case 0: body[i] = UInt8(truncatingIfNeeded: rng.next())
            case 1: body.remove(at: i)
            default: body.insert(Array("\r\n--XyZ123".utf8)[Int(rng.next() % 10)], at: i)
            }
        }
        if rng.next() % 4 == 0 { body = Array(body.prefix(Int(rng.next() % UInt64(body.count)))) }
        return body
    }

    /// Random corruption of a valid body: every outcome is a parsed form or a 400, never a crash or a hang.
    @Test func randomCorruptionNeverCrashes() {
        var rng = SplitMix64(seed: 42)
        let whole = multipart([("patient_id", "P-1"), ("age", "40")], file: ("image", (0..<300).map { UInt8($0 % 251) }))
        var parsed = 0, refused = 0
        for _ in 0..<3000 {
            let body = Self.corrupted(whole, &rng)
            do {
                _ = try MultipartForm.parse(contentType: type, body: body)
                parsed += 1
            } catch {
                #expect(error.status == 400)
                refused += 1
            }
        }
        #expect(parsed + refused == 3000)
        #expect(refused > 0 && parsed > 0, "the corpus exercises both outcomes")
    }

    /// STOW-RS's multipart/related, corrupted the same way: parts in order or a 400, never a crash; a wrong
    /// media or root type is a 415.
    @Test func randomCorruptionOfARelatedBodyNeverCrashes() {
        var rng = SplitMix64(seed: 43)
        let related = #"multipart/related; type="application/dicom"; boundary=XyZ123"#
        let part = Array("Content-Type: application/dicom\r\n\r\n".utf8)
        let whole = Array("--XyZ123\r\n".utf8) + part + (0..<200).map { UInt8($0 % 251) }
            + Array("\r\n--XyZ123\r\n".utf8) + part + (0..<120).map { UInt8($0 % 7) } + Array("\r\n--XyZ123--\r\n".utf8)
        let good = try? MultipartForm.parseRelated(contentType: related, type: "application/dicom", body: whole, maxParts: 1000)
        #expect(good?.parts.map(\.body.count) == [200, 120])
        var parsed = 0, refused = 0
        for _ in 0..<3000 {
            let body = Self.corrupted(whole, &rng)
            do {
                _ = try MultipartForm.parseRelated(contentType: related, type: "application/dicom", body: body, maxParts: 1000)
                parsed += 1
            } catch {
                #expect(error.status == 400)
                refused += 1
            }
        }
        #expect(parsed + refused == 3000 && refused > 0 && parsed > 0)
        for wrong in ["application/dicom", #"multipart/related; type="application/dicom+xml"; boundary=XyZ123"#, "multipart/related; boundary=XyZ123"] {
            #expect { try MultipartForm.parseRelated(contentType: wrong, type: "application/dicom", body: whole, maxParts: 1000) }
                throws: { ($0 as? Problem)?.status == 415 }
        }
    }
}

@Suite struct PatientFormTests {
    func form(_ fields: [(String, String)]) throws -> MultipartForm {
        try MultipartForm.parse(contentType: "multipart/form-data; boundary=XyZ123", body: multipart(fields))
    }

    @Test func readsAndNormalisesFields() throws {
        let p = try PatientForm.parse(try form([("patient_id", "  P-7 "), ("patient_name", "Ana Li"), ("age", "61"),
                                                ("sex", "F"), ("modality", "mri"), ("body_part", "brain"), ("note", "line 1\nline 2")]))
        #expect(p.patientId == "P-7" && p.name == "Ana Li" && p.age == 61 && p.sex == "female")
        #expect(p.modality == "MRI" && p.bodyPart == "brain" && p.note == "line 1\nline 2")
    }

    @Test(arguments: [
        [("name", "x")], [("patient_id", "   ")], [("patient_id", "P"), ("age", "-1")], [("patient_id", "P"), ("age", "151")],
        [("patient_id", "P"), ("age", "x")], [("patient_id", "P"), ("sex", "yes")], [("patient_id", "P"), ("modality", "PET")],
        [("patient_id", "P\u{1}")], [("patient_id", String(repeating: "p", count: 65))],
    ])
    func refusesBadFields(fields: [(String, String)]) throws {
        let f = try form(fields)
        #expect { try PatientForm.parse(f) } throws: { ($0 as? Problem)?.status == 400 }
    }
}
