import Foundation
import MediscopeServer
import Testing
import TestSupport
@testable import MediscopeApp

/// Patient identity text: each case here is one a user met (issue 9, section 1) or one of its kind.
@Suite struct FieldTextTests {
    func check(_ text: String, _ rule: TextRule = .patientId, field: String = "patient_id") throws(Problem) -> String? {
        try FieldText.check(Array(text.utf8), field: field, rule: rule)
    }

    func refusal(_ bytes: [UInt8], _ rule: TextRule = .patientId, field: String = "patient_id") -> String? {
        do {
            _ = try FieldText.check(bytes, field: field, rule: rule)
            return nil
        } catch {
            #expect(error.status == 400)
            return error.detail
        }
    }

    @Test func rightToLeftOverrideInAnIdIsRefusedNamingFieldAndPosition() throws {
        let detail = try #require(refusal(Array("BH-\u{202E}1234".utf8)))
        #expect(detail.contains("`patient_id`"))
        #expect(detail.contains("U+202E RIGHT-TO-LEFT OVERRIDE"))
        #expect(detail.contains("character 4"))
    }

    @Test(arguments: [
        0x00, 0x09, 0x0A, 0x1F, 0x7F, 0x80, 0x85, 0x9F,                  // C0, DEL, C1
        0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,  // bidi marks, embeddings, overrides
        0x2066, 0x2067, 0x2068, 0x2069,                                  // bidi isolates
        0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x034F, 0xFE0F,  // zero-width and invisible
        0x2028, 0x2029, 0x00A0, 0x3000, 0xE000, 0x0378,                  // separators, other spaces, private use, unassigned
    ] as [UInt32])
    func identifiersRefuseInvisibleAndControlCharacters(code: UInt32) {
        let scalar = Unicode.Scalar(code)!
        var text = "P-1"
        text.unicodeScalars.append(scalar)
        text += "7"
        let detail = refusal(Array(text.utf8))
        #expect(detail?.contains(FieldText.codePoint(scalar)) == true, "U+\(String(code, radix: 16)) was accepted")
    }

    /// Found by review: characters that hide or damage an id, and invisible characters at the ends.
    @Test func replacementBlankLeadingMarksAndInvisibleEndsAreRefused() {
        #expect(refusal(Array("BH-\u{FFFD}12".utf8))?.contains("U+FFFD") == true, "a sign of a lossy conversion upstream")
        #expect(refusal(Array("BH-\u{2800}12".utf8))?.contains("U+2800") == true, "Braille blank shows nothing")
        #expect(refusal(Array("\u{0301}".utf8))?.contains("combining mark") == true)
        #expect(refusal(Array("BH-12\u{00A0}".utf8))?.contains("U+00A0") == true, "not trimmed away silently")
        #expect(refusal(Array("BH-12\u{200B}".utf8))?.contains("U+200B") == true)
        #expect(refusal(Array("BH-\u{E000}".utf8))?.contains("private-use") == true)
        #expect(refusal(Array("BH-".utf8) + [0xEF, 0xB7, 0x90])?.contains("noncharacter") == true, "U+FDD0")
    }

    @Test func identifiersKeepLettersOfEveryScriptDigitsPunctuationAndSpaces() throws {
        for id in ["BH-1234", "Müller-7", "Ødegård 12/3", "김민준-01", "محمد-5", "Ωμέγα.9", "P_1#2"] {
            #expect(try check(id) == id)
        }
    }

    @Test func decomposedTextIsStoredAsNFC() throws {
        let decomposed = "Mu\u{0308}ller-7"
        let stored = try #require(try check(decomposed))
        #expect(Array(stored.utf8) == Array("Müller-7".utf8), "stored bytes are the composed form")
        #expect(stored.unicodeScalars.count == 8)
        #expect(try check("Jose\u{0301} Nu\u{0301}n\u{0303}ez", .patientName, field: "patient_name").map { Array($0.utf8) }
                == Array("José Núñez".utf8))
    }

    @Test func invalidUTF8IsRefusedNeverReplaced() {
        let latin1: [UInt8] = [0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72]  // "Müller" in Latin-1
        let detail = refusal(latin1, .patientName, field: "patient_name")
        #expect(detail?.contains("`patient_name` is not valid UTF-8") == true)
        #expect(detail?.contains("byte offset 1") == true)
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x61, 0xE2, 0x82]] {
            #expect(refusal(bad, .note, field: "note") != nil, "overlong, surrogate, out of range and cut sequences")
        }
    }

    @Test func oneCharacterOfMillionsOfCombiningMarksIsRefusedByItsSize() throws {
        // Seen: "M" + 7.5 million U+0301 is one grapheme, 15 MB; here 100,000 marks make the same point.
        let zalgo = "M" + String(repeating: "\u{0301}", count: 100_000)
        #expect(zalgo.count == 1)
        let detail = try #require(refusal(Array(zalgo.utf8), .patientName, field: "patient_name"))
        #expect(detail.contains("too long") && detail.contains("400 Unicode scalars") && detail.contains("800 bytes"))
        // The scalar bound alone also catches a value small in bytes but heavy in marks.
        let marks = "M" + String(repeating: "\u{0301}", count: 130)
        #expect(marks.utf8.count <= 264 && marks.count == 1)
        #expect(refusal(Array(marks.utf8)) != nil, "131 scalars are over patient_id's 128")
    }

    @Test func limitsCountCharactersScalarsAndBytes() throws {
        #expect(try check(String(repeating: "p", count: 64)) != nil)
        #expect(refusal(Array(String(repeating: "p", count: 65).utf8)) != nil, "65 characters")
        #expect(try check(String(repeating: "€", count: 64)) != nil, "64 characters of 3 bytes: 192 bytes")
        #expect(refusal(Array(String(repeating: "𝔓", count: 65).utf8)) != nil)
        #expect(try check(String(repeating: "n", count: 4000), .note, field: "note") != nil)
        #expect(refusal(Array(String(repeating: "n", count: 4001).utf8), .note, field: "note") != nil)
    }

    @Test func freeTextRefusesBidiAndC1ControlsButKeepsJoinersAndLines() throws {
        #expect(refusal(Array("Ana \u{202E}Li".utf8), .patientName, field: "patient_name")?.contains("U+202E") == true)
        #expect(refusal(Array("Ana\u{85}Li".utf8), .patientName, field: "patient_name")?.contains("U+0085") == true)
        #expect(refusal(Array("Ana\nLi".utf8), .patientName, field: "patient_name") != nil, "a name is one line")
        #expect(refusal(Array("a\u{2066}b".utf8), .note, field: "note") != nil)
        #expect(try check("می\u{200C}خواهم", .patientName, field: "patient_name") == "می\u{200C}خواهم", "ZWNJ is part of Persian spelling")
        #expect(try check("line 1\r\nline 2\rline 3\tend", .note, field: "note") == "line 1\nline 2\nline 3\tend")
        #expect(try check("   ", .note, field: "note") == nil)
    }

    @Test func theUploadFormAppliesTheRulesToEveryField() throws {
        func form(_ fields: [(String, String)]) throws -> MultipartForm {
            try MultipartForm.parse(contentType: "multipart/form-data; boundary=XyZ123", body: multipart(fields))
        }
        let ok = try PatientForm.parse(try form([("patient_id", "Mu\u{0308}ller-7"), ("patient_name", "Ana Li"),
                                                 ("body_part", "brain"), ("note", "a\r\nb")]))
        #expect(Array(ok.patientId.utf8) == Array("Müller-7".utf8) && ok.note == "a\nb")
        for (field, value) in [("patient_id", "BH-\u{202E}1234"), ("patient_name", "A\u{202D}B"), ("body_part", "br\u{9B}ain"),
                               ("note", "x\u{2067}y"), ("age", "4\u{200B}0"), ("sex", "f\u{0}"), ("modality", "M\u{200E}RI")] {
            var fields = [("patient_id", "P-1")]
            fields = field == "patient_id" ? [(field, value)] : fields + [(field, value)]
            let f = try form(fields)
            #expect { try PatientForm.parse(f) } throws: {
                ($0 as? Problem)?.status == 400 && ($0 as? Problem)?.detail.contains("`\(field)`") == true
            }
        }
        // The older spelling `name` and `patient_name` together: which one did the user mean?
        let both = try form([("patient_id", "P-1"), ("patient_name", "A"), ("name", "B")])
        #expect { try PatientForm.parse(both) } throws: { ($0 as? Problem)?.status == 400 }
    }
}

/// Content-Disposition and Content-Type parameters as RFC 7578, RFC 2183 and RFC 9110 define them.
@Suite struct MultipartParameterTests {
    let type = "multipart/form-data; boundary=XyZ123"

    func part(disposition: String, contentType: String? = nil, body: String = "v") -> [UInt8] {
        var text = "--XyZ123\r\nContent-Disposition: \(disposition)\r\n"
        if let contentType { text += "Content-Type: \(contentType)\r\n" }
        return Array((text + "\r\n\(body)\r\n--XyZ123--\r\n").utf8)
    }

    @Test func semicolonAndEqualsInsideAQuotedFilenameAreData() throws {
        let form = try MultipartForm.parse(contentType: type, body: part(disposition: #"form-data; name="image"; filename="MR; name=T2.jpg""#))
        #expect(form.parts.count == 1 && form.first("image")?.filename == "MR; name=T2.jpg")
    }

    /// curl and browsers send a backslash in a file name as it is: a name ending in one still parses.
    @Test func aFileNameEndingInABackslashIsReadLiterally() throws {
        let form = try MultipartForm.parse(contentType: type, body: part(disposition: #"form-data; name="image"; filename="T2\""#))
        #expect(form.first("image")?.filename == #"T2\"#)
    }

    @Test func backslashEscapesAreHonoured() throws {
        let form = try MultipartForm.parse(contentType: type, body: part(disposition: #"form-data; name="image"; filename="a\"b\\c.jpg""#))
        #expect(form.first("image")?.filename == #"a"b\c.jpg"#)
    }

    @Test func parameterOrderIsFreeAndNamesAreCaseInsensitive() throws {
        for disposition in [#"form-data; filename="x.jpg"; name="image""#, #"Form-Data; NAME="image"; FileName="x.jpg""#,
                            #"form-data;name="image";filename="x.jpg""#, #"form-data ; name = "image" ; filename = "x.jpg" ;"#] {
            let form = try MultipartForm.parse(contentType: type, body: part(disposition: disposition))
            #expect(form.first("image")?.filename == "x.jpg", "\(disposition)")
        }
    }

    @Test func tokenValuesAndExtendedFilenamesAreRead() throws {
        let bare = try MultipartForm.parse(contentType: type, body: part(disposition: "form-data; name=patient_id"))
        #expect(bare.text("patient_id") == "v")
        let extended = try MultipartForm.parse(contentType: type, body: part(
            disposition: #"form-data; name="image"; filename="fallback.jpg"; filename*=UTF-8''M%C3%BCller%20T2.jpg"#))
        #expect(extended.first("image")?.filename == "Müller T2.jpg")
    }

    @Test func quotedBoundaryWithSpecialCharactersIsUsed() throws {
        let body = Array("--a;b=c\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--a;b=c--\r\n".utf8)
        let form = try MultipartForm.parse(contentType: #"multipart/form-data; charset="utf-8"; boundary="a;b=c""#, body: body)
        #expect(form.text("x") == "1")
    }

    @Test(arguments: [
        #"form-data; name="image"; filename="unterminated.jpg"#,   // no closing quote
        #"form-data; name="image"; name="other""#,                  // a parameter twice
        #"form-data; name="image"; filename"#,                      // no '='
        #"form-data; name="image" trailing"#,                       // text after a value
        #"form-data; filename="x.jpg""#,                            // no name
        #"form-data; name="""#,                                     // empty name
        #"form-data; name="image"; filename*=latin1''x.jpg"#,       // RFC 7578: UTF-8 only
        #"attachment; name="image""#,                               // not form-data
    ])
    func malformedDispositionsAreA400(disposition: String) {
        #expect { try MultipartForm.parse(contentType: type, body: part(disposition: disposition)) } throws: {
            ($0 as? Problem)?.status == 400
        }
    }

    @Test func malformedContentTypeParametersAreA400() {
        #expect { try MultipartForm.parse(contentType: #"multipart/form-data; boundary="XyZ123"#, body: part(disposition: #"form-data; name="a""#)) }
            throws: { ($0 as? Problem)?.status == 400 }
    }

    @Test func aFieldOrFileGivenTwiceIsA400() throws {
        let twice = multipart([("patient_id", "P-1"), ("patient_id", "P-2")])
        #expect { try MultipartForm.parse(contentType: type, body: twice) } throws: {
            ($0 as? Problem)?.detail.contains("`patient_id` more than once") == true
        }
        let twoImages = Array(("--XyZ123\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nA\r\n"
            + "--XyZ123\r\nContent-Disposition: form-data; name=\"image\"; filename=\"b.jpg\"\r\n\r\nB\r\n--XyZ123--\r\n").utf8)
        #expect { try MultipartForm.parse(contentType: type, body: twoImages) } throws: { ($0 as? Problem)?.status == 400 }
        let headerTwice = Array("--XyZ123\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nv\r\n--XyZ123--".utf8)
        #expect { try MultipartForm.parse(contentType: type, body: headerTwice) } throws: { ($0 as? Problem)?.status == 400 }
    }

    /// Random corruption of the parameters alone: a parsed form or a 400, and a parsed one never holds a
    /// duplicate field.
    @Test func randomParameterCorruptionNeverCrashes() {
        var rng = SplitMix64(seed: 7)
        let alphabet = Array(#"";=\ *'%aZ"#.utf8)
        let base = Array(#"form-data; name="image"; filename="MR; name=T2.jpg""#.utf8)
        var parsed = 0, refused = 0
        for _ in 0..<3000 {
            var d = base
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let i = Int(rng.next() % UInt64(d.count))
                let c = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                if rng.next() % 2 == 0 { d[i] = c } else { d.insert(c, at: i) }
            }
            do {
                let form = try MultipartForm.parse(contentType: type, body: part(disposition: String(decoding: d, as: UTF8.self)))
                #expect(Set(form.parts.map(\.name)).count == form.parts.count)
                parsed += 1
            } catch {
                #expect(error.status == 400)
                refused += 1
            }
        }
        #expect(parsed > 0 && refused > 0, "the corpus exercises both outcomes")
    }
}
