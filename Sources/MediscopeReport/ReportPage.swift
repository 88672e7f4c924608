import Foundation
import MediscopeStore

/// Shown with every result: in the API's JSON (and so in the dashboard) and on the printed report.
public enum DecisionSupport {
    public static let notice = "Decision support only, not a diagnosis. A qualified clinician must review every result."
}

/// What the report template sees: every value already formatted as text, nothing optional that a template
/// could mistake for a parent's value (Mustache looks a missing name up in the enclosing objects).
struct ReportPage {
    struct Field { var label: String; var value: String }
    struct Stamp { var text: String; var machine: String }
    struct Image { var url: String; var alt: String; var width: Int; var height: Int }
    struct Probability { var label: String; var percent: String; var predicted: Bool }
    struct Finding {
        var title: String
        var prediction: String
        var confidence: String
        var probabilities: [Probability]
        var overlay: Image
    }
    struct ReportText { var paragraphs: [String] }
    /// The report's signature: who signed which version when; or that the text is an unsigned draft.
    struct Signature {
        var signedBy: String
        var signedAt: Stamp
        var version: Int
        var amended: Bool
    }

    static let notice = DecisionSupport.notice

    var institution: String
    var analysisId: String
    var analyzedAt: Stamp
    var printedAt: Stamp
    var patientFields: [Field]
    var scan: Image
    var findings: [Finding]
    var reportText: ReportText?
    /// Set when the newest version is signed; nil: the signature lines are left blank.
    var signature: Signature?
    /// True when there is report text that no clinician has signed.
    var unsignedDraft = false
    var notice = Self.notice
    /// Footer lines about the models that made the analysis (an approximated model's fidelity).
    var modelNotes: [String] = []

    init(_ r: AnalysisRecord, institution: String, printedAt: Date, links: some AnalysisLinks) {
        self.institution = institution
        analysisId = r.id
        analyzedAt = Self.stamp(r.createdAt)
        self.printedAt = Self.stamp(printedAt)
        let p = r.patient
        let fields: [(String, String?)] = [
            ("Patient ID", p.patientId), ("Name", p.name), ("Age", p.age.map(String.init)), ("Sex", p.sex),
            ("Modality", p.modality), ("Body part", p.bodyPart), ("Note", p.note),
        ]
        patientFields = fields.compactMap { label, value in
            guard let value = value?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
            return Field(label: label, value: value)
        }
        // Attribute text cannot hold a <bdi>: user text there is isolated with FSI ... PDI instead.
        func isolated(_ text: String) -> String { "\u{2068}\(text)\u{2069}" }
        let what = [p.modality, p.bodyPart.map { "of the \(isolated($0))" }].compactMap { $0 }.joined(separator: " ")
        scan = Image(url: links.scan(of: r), alt: "Scan\(what.isEmpty ? "" : ", \(what)"), patient \(isolated(p.patientId))",
                     width: r.scan.width, height: r.scan.height)
        findings = r.results.map { result in
            // Labels as people read them (the manifest's titles when the analysis ran).
            func title(_ label: String) -> String { result.probabilities.first { $0.label == label }?.title ?? label }
            return Finding(
                title: result.title, prediction: title(result.prediction), confidence: Self.percent(result.confidence),
                probabilities: result.probabilities.map {
                    Probability(label: $0.title ?? $0.label, percent: Self.percent($0.probability), predicted: $0.label == result.prediction)
                },
                overlay: Image(url: links.heatmap(of: result, in: r),
                               alt: "Grad-CAM overlay for \(result.title): the regions that weighed most for \(title(result.explainedLabel))",
                               width: result.heatmap.width, height: result.heatmap.height))
        }
        reportText = r.report.flatMap(Self.paragraphs).map(ReportText.init)
        unsignedDraft = reportText != nil
    }

    /// Shows `version` (the newest of the analysis's report) instead of the record's legacy text.
    mutating func show(_ version: ReportVersion?, amended: Bool) {
        guard let version else { return }
        reportText = Self.paragraphs(version.text).map(ReportText.init)
        if version.status == .signed {
            signature = Signature(signedBy: version.authorName ?? version.authorId ?? "unknown", signedAt: Self.stamp(version.createdAt),
                                  version: version.number, amended: amended)
            unsignedDraft = false
        } else {
            signature = nil
            unsignedDraft = reportText != nil
        }
    }

    static func percent(_ p: Double) -> String { String(format: "%.1f%%", p * 100) }

    /// Blank lines separate paragraphs; nil when there is no text at all.
    static func paragraphs(_ text: String) -> [String]? {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
        var paragraphs: [String] = []
        var current: [String] = []
        for line in lines + [""] {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                if !current.isEmpty { paragraphs.append(current.joined(separator: " ")); current = [] }
            } else {
                current.append(trimmed)
            }
        }
        return paragraphs.isEmpty ? nil : paragraphs
    }

    /// UTC, readable ("2025-03-04 10:21 UTC") and machine-readable (for `<time datetime>`).
    static func stamp(_ date: Date) -> Stamp {
        Stamp(text: format(date, "yyyy-MM-dd HH:mm 'UTC'"), machine: format(date, "yyyy-MM-dd'T'HH:mm:ss'Z'"))
    }

    private static func format(_ date: Date, _ pattern: String) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = pattern
        return f.string(from: date)
    }
}
