import Foundation
import MediscopeImaging
@testable import MediscopeReport
@testable import MediscopeStore
import Testing
import TestSupport

/// The report as rendered from the repository's own templates/ folder.
@Suite struct ReportTests {
    static let templatesFolder = Repository.root.appendingPathComponent("templates")
    static let attack = #"<img src=x onerror=alert(1)>"'"#
    static let escapedAttack = "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;"

    static func record(patient: PatientInfo = PatientInfo(patientId: "P-001"), report: String? = nil) -> AnalysisRecord {
        func image(_ type: String) -> ImageRef { ImageRef(key: String(repeating: "a", count: 64), contentType: type, width: 512, height: 512, byteCount: 1) }
        return AnalysisRecord(
            id: "01JREPORTTEST0000000000000", createdAt: Date(timeIntervalSince1970: 1_741_083_693), organizationId: "org-a",
            createdBy: nil, patient: patient, imageWidth: 1024, imageHeight: 1024, scan: image("image/jpeg"),
            results: [
                StoredResult(id: "tumor-type", model: "vgg16", title: "Tumour type", task: "multiclass",
                             probabilities: [StoredProbability(label: "glioma", probability: 0.8125),
                                             StoredProbability(label: "meningioma", probability: 0.125),
                                             StoredProbability(label: "notumor", probability: 0.0625)],
                             prediction: "glioma", confidence: 0.8125, explainedLabel: "glioma", heatmap: image("image/webp")),
                StoredResult(id: "tumor-presence", model: "vgg16", title: "Tumour present", task: "binary",
                             probabilities: [StoredProbability(label: "tumor", probability: 0.9375),
                                             StoredProbability(label: "no tumor", probability: 0.0625)],
                             prediction: "tumor", confidence: 0.9375, explainedLabel: "tumor", heatmap: image("image/webp")),
            ],
            timingsMs: [:], report: report)
    }

    /// The addresses the app hands the renderer (MediscopeApp's APILinks serves the same ones).
    struct Links: AnalysisLinks {
        func scan(of record: AnalysisRecord) -> String { "/api/analyses/\(record.id)/scan.jpg" }
        func heatmap(of result: StoredResult, in record: AnalysisRecord) -> String {
            "/api/analyses/\(record.id)/heatmaps/\(result.id).webp"
        }
    }

    func render(_ record: AnalysisRecord, institution: String = "St. Example Hospital") throws -> String {
        try ReportTemplates(directory: Self.templatesFolder)
            .render(record, institution: institution, printedAt: Date(timeIntervalSince1970: 1_741_170_093), links: Links())
    }

    @Test func patientTextIsEscapedInTextAndAttributes() throws {
        let patient = PatientInfo(patientId: Self.attack, name: Self.attack, age: 54, sex: "female", modality: "MRI",
                                  bodyPart: Self.attack, note: Self.attack)
        let html = try render(Self.record(patient: patient), institution: Self.attack)
        #expect(!html.contains("<img src=x"))
        #expect(!html.contains(">\"'"), "no raw quotes from the values")
        // Patient id, name, body part, note, institution (header and footer), and in the scan's alt text.
        #expect(html.components(separatedBy: Self.escapedAttack).count - 1 >= 7)
        #expect(html.contains("alt=\"Scan, MRI of the \u{2068}\(Self.escapedAttack)\u{2069}, patient \u{2068}\(Self.escapedAttack)\u{2069}\""))
    }

    /// User text is shown isolated: right-to-left text in it cannot reorder what stands beside it.
    @Test func patientTextIsIsolatedFromItsNeighbours() throws {
        let patient = PatientInfo(patientId: "BH-1234", name: "דוד כהן", bodyPart: "מוח")
        let html = try render(Self.record(patient: patient, report: "שורה אחת"))
        #expect(html.contains("<dd><bdi>BH-1234</bdi></dd>") && html.contains("<dd><bdi>דוד כהן</bdi></dd>"))
        #expect(html.contains("of the \u{2068}מוח\u{2069}, patient \u{2068}BH-1234\u{2069}\""))
        #expect(html.contains("<p dir=\"auto\">שורה אחת</p>"))
    }

    @Test func headerPatientFindingsAndNoticeArePresent() throws {
        let patient = PatientInfo(patientId: "P-001", name: "Jane Roe", age: 54, sex: "female", modality: "MRI",
                                  bodyPart: "brain", note: "follow-up")
        let html = try render(Self.record(patient: patient))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains(#"<html lang="en">"#) && html.contains(#"<meta charset="utf-8">"#))
        #expect(html.contains(#"<link rel="stylesheet" href="/report.css">"#))
        #expect(html.contains("St. Example Hospital") && html.contains("Imaging analysis report"))
        #expect(html.contains("01JREPORTTEST0000000000000"))
        #expect(html.contains(#"<time datetime="2025-03-04T10:21:33Z">2025-03-04 10:21 UTC</time>"#), "analysed")
        #expect(html.contains(#"<time datetime="2025-03-05T10:21:33Z">2025-03-05 10:21 UTC</time>"#), "printed")
        for field in ["<dt>Patient ID</dt><dd><bdi>P-001</bdi></dd>", "<dt>Name</dt><dd><bdi>Jane Roe</bdi></dd>",
                      "<dt>Age</dt><dd><bdi>54</bdi></dd>", "<dt>Sex</dt><dd><bdi>female</bdi></dd>",
                      "<dt>Modality</dt><dd><bdi>MRI</bdi></dd>", "<dt>Body part</dt><dd><bdi>brain</bdi></dd>",
                      "<dt>Note</dt><dd><bdi>follow-up</bdi></dd>"] {
            #expect(html.contains(field), "\(field)")
        }
        #expect(html.contains("<h3>Tumour type</h3>") && html.contains("<strong>glioma</strong>, confidence 81.2%"))
        #expect(html.contains("<h3>Tumour present</h3>") && html.contains("<strong>tumor</strong>, confidence 93.8%"))
        for (label, percent) in [("glioma", "81.2%"), ("meningioma", "12.5%"), ("notumor", "6.2%"), ("no tumor", "6.2%")] {
            #expect(html.contains(#"<th scope="row">\#(label)</th><td>\#(percent)</td>"#), "\(label)")
        }
        #expect(html.contains(#"<tr class="predicted"><th scope="row">glioma</th>"#))
        #expect(html.contains(#"src="/api/analyses/01JREPORTTEST0000000000000/scan.jpg""#))
        for result in ["tumor-type", "tumor-presence"] {
            #expect(html.contains(#"src="/api/analyses/01JREPORTTEST0000000000000/heatmaps/\#(result).webp""#))
        }
        #expect(html.contains(#"alt="Grad-CAM overlay for Tumour type: the regions that weighed most for glioma""#))
        #expect(html.contains("Decision support only, not a diagnosis. A qualified clinician must review every result."))
        #expect(html.contains("Reviewed by") && html.contains(">Date<") && html.contains(">Signature<"))
    }

    @Test func labelTitlesAreWhatPeopleRead() throws {
        // Records made with a manifest that has labelTitles carry them; older ones (above) show the bare labels.
        var record = Self.record()
        record.results[0].probabilities = [StoredProbability(label: "glioma", title: "Glioma", probability: 0.8125),
                                           StoredProbability(label: "notumor", title: "No tumour <none>", probability: 0.1875)]
        let html = try render(record)
        #expect(html.contains("<strong>Glioma</strong>, confidence 81.2%"))
        #expect(html.contains(#"<th scope="row">No tumour &lt;none&gt;</th><td>18.8%</td>"#))
        #expect(!html.contains(#"<th scope="row">notumor</th>"#))
        #expect(html.contains(#"alt="Grad-CAM overlay for Tumour type: the regions that weighed most for Glioma""#))
    }

    @Test func missingPatientFieldsAreLeftOut() throws {
        let html = try render(Self.record(patient: PatientInfo(patientId: "P-002", note: "  ")))
        #expect(html.contains("<dt>Patient ID</dt><dd><bdi>P-002</bdi></dd>"))
        for label in ["Name", "Age", "Sex", "Modality", "Body part", "Note"] {
            #expect(!html.contains("<dt>\(label)</dt>"), "\(label)")
        }
        #expect(html.contains("alt=\"Scan, patient \u{2068}P-002\u{2069}\""))
    }

    @Test func reportTextIsShownInParagraphsOnlyWhenThereIsOne() throws {
        let with = try render(Self.record(report: "First finding\nwraps here.\n\n  Second <b>paragraph</b>.  \n\n"))
        #expect(with.contains(#"<h2 id="report-heading">Report</h2>"#))
        #expect(with.contains("<p dir=\"auto\">First finding\nwraps here.</p>"), "a paragraph keeps its lines")
        #expect(with.contains("<p dir=\"auto\">Second &lt;b&gt;paragraph&lt;/b&gt;.</p>"))
        for text in [nil, " \n\n "] {
            #expect(!(try render(Self.record(report: text))).contains("report-heading"), "\(String(describing: text))")
        }
    }

    @Test func noInlineScriptOrStyle() throws {
        let html = try render(Self.record(report: "Text."))
        for forbidden in ["<script", "<style", "style=", "onerror=", "onload=", "javascript:"] {
            #expect(!html.lowercased().contains(forbidden), "\(forbidden)")
        }
    }

    // MARK: Issue 21

    static func dicomRecord() -> AnalysisRecord {
        var record = Self.record(patient: PatientInfo(patientId: "P-DCM", modality: "MRI"))
        record.source = ScanSource(
            format: "dicom",
            dicom: DicomWindow(frame: 2, numberOfFrames: 3, photometricInterpretation: "MONOCHROME2", modalityLUT: "rescale",
                               rescaleSlope: 1, rescaleIntercept: -1024, voi: "window", windowCenter: 40, windowWidth: 400,
                               voiLUTFunction: "LINEAR", transferSyntaxUID: "1.2.840.10008.1.2.1"),
            study: DicomStudy(studyInstanceUID: "1.2.826.0.1.3680043.8.498.10472658473281977658941582616466716512",
                              seriesInstanceUID: "1.2.826.0.1.3680043.8.498.2", sopInstanceUID: "1.2.826.0.1.3680043.8.498.3",
                              studyDate: "20240229", seriesDescription: "T2 <axial> & \"FLAIR\""))
        return record
    }

    /// The printed report of a DICOM analysis says how its image came from the file: frame, window,
    /// rescale, series and study (escaped, isolated like other file text).
    @Test func aDicomAnalysisPrintsItsFrameWindowSeriesAndStudy() throws {
        let html = try render(Self.dicomRecord())
        #expect(html.contains(#"<h2 id="source-heading">Source image</h2>"#))
        for field in ["<dt>Format</dt><dd><bdi>DICOM</bdi></dd>", "<dt>Frame</dt><dd><bdi>2 of 3</bdi></dd>",
                      "<dt>Window</dt><dd><bdi>centre 40, width 400 (LINEAR)</bdi></dd>",
                      "<dt>Rescale</dt><dd><bdi>slope 1, intercept -1024</bdi></dd>",
                      "<dt>Photometric</dt><dd><bdi>MONOCHROME2</bdi></dd>",
                      "<dt>Series</dt><dd><bdi>T2 &lt;axial&gt; &amp; &quot;FLAIR&quot;</bdi></dd>",
                      "<dt>Study date</dt><dd><bdi>2024-02-29</bdi></dd>",
                      #"<div class="wide"><dt>Study UID</dt><dd><bdi>1.2.826.0.1.3680043.8.498.10472658473281977658941582616466716512</bdi></dd></div>"#,
                      #"<div class="wide"><dt>Series UID</dt><dd><bdi>1.2.826.0.1.3680043.8.498.2</bdi></dd></div>"#] {
            #expect(html.contains(field), "\(field)")
        }
        // A window the file did not have: the frame's range, said as such.
        var record = Self.dicomRecord()
        record.source?.dicom?.voi = "frameRange"
        record.source?.dicom?.voiLUTFunction = nil
        #expect(try render(record).contains("<dt>Window</dt><dd><bdi>the frame&#39;s full range (centre 40, width 400)</bdi></dd>"))
        // A plain photo has no source section; one that had to be turned says so.
        #expect(!(try render(Self.record())).contains("source-heading"))
        var turned = Self.record()
        turned.source = ScanSource(format: "jpeg", exifOrientation: 6, orientationApplied: "rotated 90° clockwise")
        let html2 = try render(turned)
        #expect(html2.contains("<dt>Orientation</dt><dd><bdi>EXIF 6: rotated 90° clockwise</bdi></dd>") && html2.contains("<bdi>JPEG</bdi>"))
    }

    /// A numbered list keeps one item a line when printed: the lines stay in the text (as text, escaped),
    /// and the stylesheet shows them (pre-line).
    @Test func aSignedNumberedListKeepsItsLines() throws {
        let text = "Findings:\n1. Glioma <likely>, 81%\n2. Heatmap: left temporal\n\nReview the images."
        let version = ReportVersion(analysisId: "01JREPORTTEST0000000000000", organizationId: "org-a", number: 2, status: .signed,
                                    text: text, origin: .clinician, authorId: "u1", authorName: "Dr Who", createdAt: Date(timeIntervalSince1970: 1_741_170_000))
        let html = try ReportTemplates(directory: Self.templatesFolder)
            .render(Self.record(), institution: "X", printedAt: Date(timeIntervalSince1970: 1_741_170_093), links: Links(), versions: [version])
        #expect(html.contains("<p dir=\"auto\">Findings:\n1. Glioma &lt;likely&gt;, 81%\n2. Heatmap: left temporal</p>"))
        #expect(html.contains("<p dir=\"auto\">Review the images.</p>") && !html.contains("<br"))
        let css = try String(contentsOf: Self.templatesFolder.deletingLastPathComponent().appendingPathComponent("public/report.css"), encoding: .utf8)
        #expect(css.contains(".report-text p { margin: 0 0 0.5rem; white-space: pre-line; }"))
    }

    /// A draft that arrived after the clinician wrote (and signed) their own text is not printed: their text is.
    @Test func aLateDraftIsNeverThePrintedReport() throws {
        func version(_ n: Int, _ status: ReportVersion.Status, _ origin: ReportVersion.Origin, _ text: String) -> ReportVersion {
            ReportVersion(analysisId: "01JREPORTTEST0000000000000", organizationId: "org-a", number: n, status: status, text: text, origin: origin,
                          model: origin == .llm ? "m" : nil, authorId: origin == .clinician ? "u1" : nil,
                          authorName: origin == .clinician ? "Dr Who" : nil, createdAt: Date(timeIntervalSince1970: 1_741_170_000 + Double(n)))
        }
        let versions = [version(1, .draft, .clinician, "My own words."), version(2, .signed, .clinician, "My own words, signed."),
                        version(3, .draft, .llm, "The late LLM draft.")]
        #expect(ReportVersions.current(versions) == versions[1] && ReportVersions.isLateDraft(versions[2], in: versions))
        #expect(!ReportVersions.isLateDraft(version(1, .draft, .llm, "A draft."), in: [version(1, .draft, .llm, "A draft.")]))
        let html = try ReportTemplates(directory: Self.templatesFolder)
            .render(Self.record(), institution: "X", links: Links(), versions: versions)
        #expect(html.contains("My own words, signed.") && !html.contains("The late LLM draft.") && html.contains("Signed by"))
        #expect(!html.contains("Unsigned draft"))
    }

    @Test func brokenTemplateFoldersAreClearErrors() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/mediscope-templates")
        #expect { try ReportTemplates(directory: missing) } throws: {
            let e = $0 as? ReportTemplateError
            return e?.kind == .folderMissing && e?.message.contains("/nonexistent/mediscope-templates") == true
        }
        let folder = TemporaryFolder("mediscope-templates")
        func expectFailure(_ kind: ReportTemplateError.Kind, _ words: String) {
            #expect { try ReportTemplates(directory: folder.url) } throws: {
                let e = $0 as? ReportTemplateError
                return e?.kind == kind && e?.message.contains(words) == true
            }
        }
        expectFailure(.templateMissing, "no report.mustache")
        try "<p>{{> signature}}</p>".write(to: folder.appending("report.mustache"), atomically: true, encoding: .utf8)
        expectFailure(.templateMissing, "signature.mustache is missing")
        try "{{#open}}never closed".write(to: folder.appending("report.mustache"), atomically: true, encoding: .utf8)
        expectFailure(.invalidTemplate, "report.mustache is not a valid Mustache template")
    }
}

/// Issue 22: the printed report of an out-of-scope image leads with the warning and its reasons.
@Suite struct OutOfScopeReportTests {
    @Test func theWarningLeadsAndTheFindingsAreMuted() throws {
        var record = ReportTests.record()
        record.inputCheck = InputCheck(verdict: .outOfScope, reasons: [
            InputCheck.Reason(code: "colour", message: "62% of the image is in colour; this model expects greyscale MRI <b>.")],
            score: 131.2, threshold: 74.5, method: "image-checks+mahalanobis-sqrt")
        let html = try ReportTests().render(record)
        let warning = try #require(html.range(of: "This image does not look like a scan the model was made for: its numbers are not meaningful."))
        let findings = try #require(html.range(of: "id=\"findings-heading\""))
        #expect(warning.lowerBound < findings.lowerBound, "the warning comes before the results")
        #expect(html.contains("62% of the image is in colour; this model expects greyscale MRI &lt;b&gt;."), "reasons, escaped")
        #expect(html.contains("class=\"findings muted\"") && html.contains("role=\"alert\""))

        let plain = try ReportTests().render(ReportTests.record())
        #expect(!plain.contains("does not look like") && plain.contains("class=\"findings\""))
    }
}
