import MediscopeServer
import MediscopeStore

/// Patient fields from the upload form, checked. Values are kept as typed, only trimmed.
enum PatientForm {
    static func parse(_ form: MultipartForm) throws(Problem) -> PatientInfo {
        func field(_ name: String, max: Int) throws(Problem) -> String? {
            guard let raw = form.text(name) else { return nil }
            let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if value.isEmpty { return nil }
            guard value.count <= max else { throw Problem.badRequest("`\(name)` is longer than \(max) characters") }
            // Newlines are fine in a note; other control characters never are.
            let allowNewlines = name == "note"
            let hasControl = value.unicodeScalars.contains { c in
                (c.value < 0x20 && !(allowNewlines && (c == "\n" || c == "\r" || c == "\t"))) || c.value == 0x7f
            }
            guard !hasControl else {
                throw Problem.badRequest("`\(name)` contains control characters")
            }
            return value
        }
        guard let patientId = try field("patient_id", max: 64) else {
            throw Problem.badRequest("`patient_id` is required")
        }
        var info = PatientInfo(patientId: patientId)
        info.name = try field("patient_name", max: 200)
        if info.name == nil { info.name = try field("name", max: 200) }
        if let age = try field("age", max: 3) {
            guard let years = Int(age), (0...150).contains(years) else { throw Problem.badRequest("`age` must be a whole number of years from 0 to 150") }
            info.age = years
        }
        if let sex = try field("sex", max: 16) {
            let normalized = ["f": "female", "m": "male"][sex.lowercased()] ?? sex.lowercased()
            guard ["female", "male", "other", "unknown"].contains(normalized) else {
                throw Problem.badRequest("`sex` must be female, male, other or unknown")
            }
            info.sex = normalized
        }
        if let modality = try field("modality", max: 8) {
            guard ["MRI", "CT"].contains(modality.uppercased()) else { throw Problem.badRequest("`modality` must be MRI or CT") }
            info.modality = modality.uppercased()
        }
        info.bodyPart = try field("body_part", max: 64)
        info.note = try field("note", max: 4000)
        return info
    }
}
