import Foundation
import MediscopeImaging
import MediscopeStore

/// What a report draft may be built from: the models' results and four coarse facts about the patient.
/// Nothing here identifies a person: no patient id, name, note, dates, file names, DICOM UIDs, user
/// names or organisation. The prompt and the template fallback are rendered from this value only, so an
/// operator's edited template cannot reach anything else. Every patient fact is from a closed vocabulary
/// (modality MRI/CT, DICOM's Body Part Examined terms, sex female/male/other/unknown, an age in years):
/// free text typed into a field never reaches a prompt, whatever it says.
package struct ReportFacts: Encodable, Sendable, Equatable {
    /// One probability, as a whole percentage.
    package struct Probability: Encodable, Sendable, Equatable {
        package var label: String
        package var percent: Int
    }

    /// One model's result.
    package struct Finding: Encodable, Sendable, Equatable {
        /// What the model looks for, e.g. "Brain tumour".
        package var title: String
        /// `binary` or `multiclass`.
        package var task: String
        /// The predicted label as people read it.
        package var prediction: String
        package var confidencePercent: Int
        /// Every label, most likely first.
        package var probabilities: [Probability]
        /// The label the Grad-CAM heatmap explains.
        package var explainedLabel: String
    }

    /// "MRI" or "CT", when given.
    package var modality: String?
    /// The meaning of a DICOM Body Part Examined term, e.g. "brain", when the form's text is one.
    package var bodyPart: String?
    /// Age in whole years; 90 and over as "90+" (HIPAA Safe Harbor); nil when not given.
    package var age: String?
    /// female, male, other or unknown, when given.
    package var sex: String?
    package var findings: [Finding]
    /// "out_of_scope" when the image does not look like what the models were made for (their numbers are
    /// then not meaningful), "in_scope", or "not_checked".
    package var inputCheck: String
    /// The input check's reason codes (closed vocabulary, e.g. "colour", "unfamiliar") when out of scope.
    package var inputCheckReasons: [String]
    /// True when the image is out of scope (templates read stored properties only).
    package var outOfScope: Bool
    /// `InputCheck.warning`, for the fallback template.
    package var outOfScopeWarning = InputCheck.warning
    /// True when there is at least one finding (templates read stored properties only).
    package var hasFindings: Bool
    /// The facts as one JSON object (sorted keys, no extra whitespace), so a prompt can hand them to the
    /// model as delimited data rather than prose.
    package var json: String

    enum CodingKeys: String, CodingKey { case modality, bodyPart, age, sex, findings, inputCheck, inputCheckReasons }

    package init(_ record: AnalysisRecord) {
        modality = record.patient.modality.flatMap { ["MRI", "CT"].contains($0) ? $0 : nil }
        bodyPart = BodyPartExamined.matching(record.patient.bodyPart)?.meaning
        age = record.patient.age.flatMap { (0...150).contains($0) ? ($0 >= 90 ? "90+" : String($0)) : nil }
        sex = record.patient.sex.flatMap { ["female", "male", "other", "unknown"].contains($0) ? $0 : nil }
        findings = record.results.map { result in
            func title(_ label: String) -> String {
                result.probabilities.first { $0.label == label }?.title ?? label
            }
            return Finding(
                title: result.title, task: result.task, prediction: title(result.prediction),
                confidencePercent: Int((result.confidence * 100).rounded()),
                probabilities: result.probabilities.sorted { $0.probability > $1.probability }
                    .map { Probability(label: $0.title ?? $0.label, percent: Int(($0.probability * 100).rounded())) },
                explainedLabel: title(result.explainedLabel))
        }
        hasFindings = !findings.isEmpty
        inputCheck = record.inputCheck.verdict.rawValue
        outOfScope = record.inputCheck.isOutOfScope
        // Codes only, never the messages: those quote values measured from the file.
        inputCheckReasons = outOfScope ? Array(Set(record.inputCheck.reasons.map(\.code).filter(InputCheck.Code.all.contains))).sorted() : []
        json = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        json = (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
