/// A Body Part Examined (0018,0015) defined term of DICOM (PS3.16 Annex L, the terms of the anatomic
/// regions CT and MR are made of), with its meaning in words. The closed vocabulary that free text is
/// mapped to before it may reach a report prompt or pre-fill a form: text that is none of these terms
/// or meanings is no fact (an instruction typed into the field, or an identifier, never passes).
package struct BodyPartExamined: Sendable, Equatable {
    /// The defined term, e.g. `HEADNECK`.
    package let term: String
    /// What it means in words, e.g. "head and neck".
    package let meaning: String

    /// The terms recognised.
    package static let all: [BodyPartExamined] = [
        ("ABDOMEN", "abdomen"), ("ABDOMENPELVIS", "abdomen and pelvis"), ("ANKLE", "ankle"), ("BRAIN", "brain"),
        ("BREAST", "breast"), ("CHEST", "chest"), ("CHESTABDOMEN", "chest and abdomen"),
        ("CHESTABDPELVIS", "chest, abdomen and pelvis"), ("CSPINE", "cervical spine"), ("ELBOW", "elbow"),
        ("EXTREMITY", "extremity"), ("FOOT", "foot"), ("HAND", "hand"), ("HEAD", "head"), ("HEADNECK", "head and neck"),
        ("HEART", "heart"), ("HIP", "hip"), ("IAC", "internal auditory canal"), ("KIDNEY", "kidney"), ("KNEE", "knee"),
        ("LIVER", "liver"), ("LSPINE", "lumbar spine"), ("NECK", "neck"), ("ORBIT", "orbit"), ("PELVIS", "pelvis"),
        ("PROSTATE", "prostate"), ("SELLA", "sella turcica"), ("SHOULDER", "shoulder"), ("SKULL", "skull"), ("SPINE", "spine"),
        ("TSPINE", "thoracic spine"), ("WHOLEBODY", "whole body"), ("WRIST", "wrist"),
    ].map { BodyPartExamined(term: $0.0, meaning: $0.1) }

    /// The term `text` names, as the defined term or its meaning, in any case, spacing or punctuation
    /// ("Brain", "BRAIN", "Head and neck", "HEADNECK"); nil for anything else, however close ("CT of the
    /// brain" is no term: the modality has its own field).
    package static func matching(_ text: String?) -> BodyPartExamined? {
        guard let text else { return nil }
        func key(_ s: String) -> String { String(s.uppercased().unicodeScalars.filter { ("A"..."Z").contains($0) }.map(Character.init)) }
        let k = key(text)
        guard !k.isEmpty, k.count <= 40 else { return nil }
        return all.first { $0.term == k || key($0.meaning) == k }
    }
}
