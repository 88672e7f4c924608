import Foundation
import MediscopeImaging
import MediscopeServer

/// Reading a DICOM file's fields without analysing it, so the dashboard can pre-fill the upload form
/// for the clinician to confirm (the browser needs no DICOM code). Patient data: clinicians only,
/// audited, never logged; nothing is stored.
enum DicomAPI {
    static let fieldsPattern = "/api/dicom/fields"

    static let routes: [RouteSpec] = [
        // nginx sends it to the inference pool, rate limited like uploads: decoding is never the io pool's work.
        RouteSpec(method: "POST", pattern: fieldsPattern, access: .clinical, audit: "dicom.read") { s, req, _, c throws(Problem) in
            try AnalysisAPI.admitClient(s, req, c.user)
            let form = try MultipartForm.parse(contentType: req.header("content-type"), body: req.body)
            guard let part = form.first("file") else { throw Problem.badRequest("the form has no `file` field (a DICOM file)") }
            try AnalysisAPI.admitFile(s, part.body)
            return .json(try fields(part.body, limits: ImageLimits(maxPixels: s.config.maxImagePixels), log: s),
                         headers: [("Cache-Control", "no-store")])
        },
    ]

    /// What the form is pre-filled with, in the upload form's own terms (`patient_id`, `age` in years,
    /// `sex` female/male/other, `modality` MRI/CT), plus what the clinician should see to confirm it:
    /// a small preview of the windowed middle frame (PNG data URL) and the study's description.
    struct Fields: Encodable {
        var patientId: String?
        var patientName: String?
        var age: Int?
        var sex: String?
        var modality: String?
        var bodyPart: String?
        var studyDate: String?
        var seriesDescription: String?
        var numberOfFrames: Int
        var rows: Int
        var columns: Int
        var transferSyntax: String
        var preview: String?
        /// What the clinician should know about the pre-filled values (a value the file holds twice, ...).
        var notes: [String]
    }

    static func fields(_ bytes: [UInt8], limits: ImageLimits, log s: Services) throws(Problem) -> Fields {
        guard ImageDecoder.sniff(bytes) == .dicom else {
            throw Problem(status: 415, detail: "the file is not a DICOM file (a PS3.10 file with the DICM prefix, or a data set)")
        }
        // The file is rendered as the upload would render it, so a file the upload refuses is refused here
        // first, with the same answer, before anyone fills in a form for it.
        let file: DicomFile, image: PixelImage
        do {
            file = try DicomFile.read(bytes, limits: limits)
            (image, _) = try DicomRenderer.render(file)
        } catch { throw s.problem(error) }
        let a = file.attributes
        var preview: String?
        let longest = max(image.width, image.height)
        let small = longest > 256
            ? image.resized(width: max(1, image.width * 256 / longest), height: max(1, image.height * 256 / longest)) : image
        if let png = try? ImageEncoder.png(small) { preview = "data:image/png;base64," + Data(png).base64EncodedString() }
        // Values the form would refuse (controls, bidi overrides, over-long) are left out, not passed on.
        func text(_ value: String?, _ field: String, _ rule: TextRule) -> String? {
            value.flatMap { try? FieldText.check(Array($0.utf8), field: field, rule: rule) }
        }
        // Patient ID and Patient's Name hold one value (VM 1). A file with two: the ID is not pre-filled (either
        // could be another patient's), the name's first value is, and the clinician is told.
        var notes: [String] = []
        let ids = a.patientID.map(values) ?? []
        if ids.count > 1 { notes.append("Patient ID (0010,0020) holds \(ids.count) values in this file; none is pre-filled: enter the patient's ID") }
        let names = a.patientName.map(values) ?? []
        if names.count > 1 { notes.append("Patient's Name (0010,0010) holds \(names.count) values in this file; the first is pre-filled") }
        return Fields(
            patientId: ids.count == 1 ? text(ids[0], "patient_id", .patientId) : nil,
            patientName: text(names.first.flatMap(personName), "patient_name", .patientName),
            age: age(a.patientAge, birthDate: a.patientBirthDate, studyDate: a.studyDate).flatMap { (0...150).contains($0) ? $0 : nil },
            sex: a.patientSex.flatMap { ["F": "female", "M": "male", "O": "other"][$0.uppercased()] },
            modality: a.modality.flatMap { ["MR": "MRI", "CT": "CT"][$0.uppercased()] },
            // Only a defined term of Body Part Examined is pre-filled (in words): a file's free text is not.
            bodyPart: BodyPartExamined.matching(a.bodyPartExamined).map { $0.meaning.prefix(1).uppercased() + $0.meaning.dropFirst() },
            studyDate: a.studyDate.flatMap(nonEmpty), seriesDescription: text(a.seriesDescription, "series", .bodyPart),
            numberOfFrames: file.numberOfFrames, rows: file.rows, columns: file.columns,
            transferSyntax: file.transferSyntaxName, preview: preview, notes: notes)
    }

    /// The values of a multi-valued text attribute (PS3.5 6.4: separated by `\`), empty ones dropped.
    static func values(_ text: String) -> [String] {
        text.split(separator: "\\", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func nonEmpty(_ s: String) -> String? {
        let t = s.trimmingCharacters(in: .whitespaces)
        return t.isEmpty ? nil : t
    }

    /// PS3.5 6.2.1 PN: the first non-empty component group (alphabetic, else ideographic, else phonetic),
    /// its components in the order PS3.5 defines (family, given, middle, prefix, suffix), joined by spaces.
    /// Never reordered "as a person writes a name": that order differs between cultures (a Chinese or
    /// Japanese name is written family name first), and the clinician confirms the value.
    static func personName(_ pn: String) -> String? {
        let groups = pn.split(separator: "=", omittingEmptySubsequences: false)
        for group in groups.prefix(3) {
            let parts = group.split(separator: "^", omittingEmptySubsequences: false).prefix(5)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if !parts.isEmpty { return parts.joined(separator: " ") }
        }
        return nil
    }

    /// PS3.5 AS (`045Y`, `006M`, `010W`, `003D`) in whole years; else from PatientBirthDate and StudyDate
    /// (DA, `YYYYMMDD`). nil when neither says.
    static func age(_ ageString: String?, birthDate: String?, studyDate: String?) -> Int? {
        if let s = ageString?.trimmingCharacters(in: .whitespaces), s.count == 4, let n = Int(s.prefix(3)) {
            switch s.last {
            case "Y": return n
            case "M": return n / 12
            case "W": return n / 52
            case "D": return n / 365
            default: break
            }
        }
        func ymd(_ da: String?) -> (Int, Int, Int)? {
            guard let da = da?.trimmingCharacters(in: .whitespaces), da.count == 8, let v = Int(da) else { return nil }
            return (v / 10000, v / 100 % 100, v % 100)
        }
        guard let b = ymd(birthDate), let d = ymd(studyDate) else { return nil }
        let years = d.0 - b.0 - ((d.1, d.2) < (b.1, b.2) ? 1 : 0)
        return (0...150).contains(years) ? years : nil
    }
}
