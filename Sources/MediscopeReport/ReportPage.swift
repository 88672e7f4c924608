import Foundation
import MediscopeImaging
import MediscopeStore

/// Shown with every result: in the API's JSON (and so in the dashboard) and on the printed report.
package enum DecisionSupport {
    package static let notice = "Decision support only, not a diagnosis. A qualified clinician must review every result."
}

/// What the report template sees: every value already formatted as text, nothing optional that a template
/// could mistake for a parent's value (Mustache looks a missing name up in the enclosing objects).
struct ReportPage {
    struct Field {
        var label: String
        var value: String
        /// Printed across the whole row (a 64-character UID would otherwise wrap in a narrow column).
        var wide = false
    }
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
    /// Paragraphs (at blank lines), each keeping its line breaks as "\n": the stylesheet shows them
    /// (`white-space: pre-line`), so a numbered list prints one item a line, as text, never as markup.
    struct ReportText { var paragraphs: [String] }
    /// Printed above the results when the image does not look like what the models were made for.
    struct OutOfScope {
        var warning = InputCheck.warning
        /// Each reason's message (what was measured, what the model expects).
        var reasons: [String]
    }
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
    /// How the analysed image came from the file: for DICOM the frame, window, Modality LUT, series and
    /// study; for a photo its EXIF orientation. Empty (no section) for a plain JPEG, PNG or WebP.
    var sourceFields: [Field]
    /// True when `sourceFields` has something to print (the template reads stored properties only).
    var hasSourceFields = false
    var scan: Image
    /// Set when the input check says out of scope: the warning leads the page and the findings are muted.
    var outOfScope: OutOfScope?
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
        sourceFields = Self.sourceFields(r.source)
        hasSourceFields = !sourceFields.isEmpty
        // Attribute text cannot hold a <bdi>: user text there is isolated with FSI ... PDI instead.
        func isolated(_ text: String) -> String { "\u{2068}\(text)\u{2069}" }
        let what = [p.modality, p.bodyPart.map { "of the \(isolated($0))" }].compactMap { $0 }.joined(separator: " ")
        scan = Image(url: links.scan(of: r), alt: "Scan\(what.isEmpty ? "" : ", \(what)"), patient \(isolated(p.patientId))",
                     width: r.scan.width, height: r.scan.height)
        outOfScope = r.inputCheck.isOutOfScope ? OutOfScope(reasons: r.inputCheck.reasons.map(\.message)) : nil
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

    /// Blank lines separate paragraphs; the lines of a paragraph stay lines (trimmed, joined with "\n").
    /// nil when there is no text at all.
    static func paragraphs(_ text: String) -> [String]? {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
        var paragraphs: [String] = []
        var current: [String] = []
        for line in lines + [""] {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                if !current.isEmpty { paragraphs.append(current.joined(separator: "\n")); current = [] }
            } else {
                current.append(trimmed)
            }
        }
        return paragraphs.isEmpty ? nil : paragraphs
    }

    /// The facts of `source` worth printing: none for a plain photo, the orientation applied to one that
    /// had to be turned, and for DICOM how the frame was rendered and which series and study it is from.
    static func sourceFields(_ source: ScanSource?) -> [Field] {
        guard let source, source.dicom != nil || source.study != nil || source.orientationApplied != nil else { return [] }
        var fields = [Field(label: "Format", value: source.format == "dicom" ? "DICOM" : source.format.uppercased())]
        if let applied = source.orientationApplied {
            fields.append(Field(label: "Orientation", value: "EXIF \(source.exifOrientation.map(String.init) ?? "?"): \(applied)"))
        }
        if let d = source.dicom {
            fields.append(Field(label: "Frame", value: "\(d.frame) of \(d.numberOfFrames)"))
            fields.append(Field(label: "Window", value: window(d)))
            switch d.modalityLUT {
            case "rescale":
                fields.append(Field(label: "Rescale", value: "slope \(number(d.rescaleSlope ?? 1)), intercept \(number(d.rescaleIntercept ?? 0))"))
            case "lutSequence": fields.append(Field(label: "Modality LUT", value: "Modality LUT Sequence"))
            default: break
            }
            fields.append(Field(label: "Photometric", value: d.photometricInterpretation))
        }
        if let study = source.study {
            let optional: [(String, String?, Bool)] = [
                ("Series", study.seriesDescription, false), ("Study date", study.studyDate.map(date), false),
                ("Study UID", study.studyInstanceUID, true), ("Series UID", study.seriesInstanceUID, true),
                ("SOP Instance UID", study.sopInstanceUID, true),
            ]
            for (label, value, wide) in optional {
                guard let value = value?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { continue }
                fields.append(Field(label: label, value: value, wide: wide))
            }
        }
        return fields
    }

    /// The VOI step as applied: "centre 40, width 400 (LINEAR)", the frame's full range, or the LUT.
    static func window(_ d: DicomWindow) -> String {
        let centreWidth = "centre \(number(d.windowCenter ?? 0)), width \(number(d.windowWidth ?? 0))"
        switch d.voi {
        case "window": return centreWidth + (d.voiLUTFunction.map { " (\($0))" } ?? "")
        case "frameRange": return "the frame's full range (\(centreWidth))"
        case "lutSequence": return "VOI LUT Sequence"
        default: return "none (colour)"
        }
    }

    /// 40, -1024, 0.5, 1.5e+06: as few digits as the value needs.
    static func number(_ value: Double) -> String { String(format: "%g", value) }

    /// DICOM's YYYYMMDD as 2024-02-29; anything else as it is.
    static func date(_ dicom: String) -> String {
        let digits = dicom.trimmingCharacters(in: .whitespaces)
        guard digits.count == 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return digits }
        let a = digits.index(digits.startIndex, offsetBy: 4), b = digits.index(a, offsetBy: 2)
        return "\(digits[..<a])-\(digits[a..<b])-\(digits[b...])"
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
