import MediscopeServer
import MediscopeStore

/// Patient fields from the upload form, checked by FieldText's rules (strict UTF-8, NFC, no controls or
/// bidi overrides, bounded) and stored as checked. A refused value is a 400 naming the field.
enum PatientForm {
    static func parse(_ form: MultipartForm) throws(Problem) -> PatientInfo {
        func field(_ name: String, _ rule: TextRule) throws(Problem) -> String? {
            guard let part = form.first(name) else { return nil }
            return try FieldText.check(part.body, field: name, rule: rule)
        }
        guard let patientId = try field("patient_id", .patientId) else {
            throw Problem.badRequest("`patient_id` is required")
        }
        var info = PatientInfo(patientId: patientId)
        // `name` is the older spelling; both at once would leave it unclear which one the user meant.
        if form.first("patient_name") != nil, form.first("name") != nil {
            throw Problem.badRequest("the form has both `patient_name` and `name`; send `patient_name` only")
        }
        info.name = try field("patient_name", .patientName)
        if info.name == nil { info.name = try field("name", .patientName) }
        if let age = try field("age", .code) {
            guard let years = Int(age), (0...150).contains(years) else { throw Problem.badRequest("`age` must be a whole number of years from 0 to 150") }
            info.age = years
        }
        if let sex = try field("sex", .code) {
            let normalized = ["f": "female", "m": "male"][sex.lowercased()] ?? sex.lowercased()
            guard ["female", "male", "other", "unknown"].contains(normalized) else {
                throw Problem.badRequest("`sex` must be female, male, other or unknown")
            }
            info.sex = normalized
        }
        if let modality = try field("modality", .code) {
            guard ["MRI", "CT"].contains(modality.uppercased()) else { throw Problem.badRequest("`modality` must be MRI or CT") }
            info.modality = modality.uppercased()
        }
        info.bodyPart = try field("body_part", .bodyPart)
        info.note = try field("note", .note)
        return info
    }

    /// The `frame` field of a DICOM upload, counted from 1 as people count frames; 0-based for the
    /// pipeline. nil when absent (the middle frame).
    static func frame(_ form: MultipartForm) throws(Problem) -> Int? {
        guard let part = form.first("frame"), let text = try FieldText.check(part.body, field: "frame", rule: .code) else { return nil }
        guard let n = Int(text), (1...100_000).contains(n) else {
            throw Problem.badRequest("`frame` must be a whole number from 1 (the first frame) to 100000")
        }
        return n - 1
    }
}
