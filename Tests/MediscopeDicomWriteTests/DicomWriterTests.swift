import CDicomWrite
import Foundation
import MediscopeImaging
@testable import MediscopeDicomWrite
import MediscopeStore
import Testing
import TestSupport

/// The writer without a server: UIDs, determinism, verification and predecessor, the burned-in caption, and
/// the C API's errors. The stack test (IntegrationTests' DicomResultsTests) validates the files with dciodvfy.
@Suite struct DicomWriterTests {
    static let created = Date(timeIntervalSince1970: 1_780_000_000.125)

    static func record(study: String? = nil) -> AnalysisRecord {
        let new = makeAnalysis()
        return AnalysisRecord(id: "01JTESTANALYSIS00000000000", createdAt: created, organizationId: new.organizationId,
                              createdBy: new.createdBy, patient: new.patient, imageWidth: new.imageWidth, imageHeight: new.imageHeight,
                              scan: new.scan, results: new.results, timingsMs: new.timingsMs, report: nil,
                              source: study.map { ScanSource(format: "dicom", study: DicomStudy(studyInstanceUID: $0, studyDate: "20261120")) },
                              inputCheck: InputCheck(verdict: .inScope, reasons: []))
    }

    static func version(_ number: Int, _ status: ReportVersion.Status, _ text: String) -> ReportVersion {
        ReportVersion(analysisId: record().id, organizationId: "org-a", number: number, status: status, text: text,
                      origin: status == .signed ? .clinician : .llm, authorId: "u-1", authorName: "Dr Ärztin",
                      createdAt: created.addingTimeInterval(Double(number) * 60))
    }

    /// dcmdump's text of `bytes`.
    static func dump(_ bytes: [UInt8]) throws -> String {
        let folder = TemporaryFolder("mediscope-dicom-writer")
        let path = folder.url.appendingPathComponent("object.dcm")
        try Data(bytes).write(to: path)
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/dcmdump"), ["+U8", path.path], timeout: 60)
        try #require(run.status == 0, "dcmdump: \(run.stderr)")
        return run.stdout
    }

    @Test func uidsAreDerivedValidAndDistinct() {
        let uids = [DicomUID.derived(analysisId: "a", kind: "sr", part: "1"), DicomUID.derived(analysisId: "a", kind: "sr", part: "2"),
                    DicomUID.derived(analysisId: "b", kind: "sr", part: "1"), DicomUID.derived(analysisId: "a", kind: "sc", part: "1")]
        #expect(Set(uids).count == uids.count)
        #expect(uids[0] == DicomUID.derived(analysisId: "a", kind: "sr", part: "1"))
        for uid in uids {
            #expect(uid.hasPrefix("2.25.") && uid.count <= 64 && uid.allSatisfy { $0.isNumber || $0 == "." })
            #expect(!uid.dropFirst(5).hasPrefix("0") || uid == "2.25.0", "no leading zero in a UID component")
        }
    }

    @Test func theSameReportGivesTheSameBytes() throws {
        let versions = [Self.version(1, .draft, "Draft text.")]
        let a = try DicomResults.structuredReport(Self.record(), versions: versions, organization: "Org A")
        let b = try DicomResults.structuredReport(Self.record(), versions: versions, organization: "Org A")
        #expect(a == b && a.count > 132 && Array(a[128..<132]) == Array("DICM".utf8))
        let text = try Self.dump(a)
        #expect(text.contains("[UNVERIFIED]") && text.contains("[PARTIAL]") && !text.contains("PredecessorDocumentsSequence"))
        #expect(text.contains(DicomUID.derived(analysisId: Self.record().id, kind: "study")), "an image's study: derived")
        #expect(text.contains("Probability of glioma") && text.contains("0.8125") && text.contains("99MEDISCOPE"))
    }

    @Test func aSignedReportIsVerifiedAndNamesItsPredecessor() throws {
        let record = Self.record(study: "1.2.826.0.1.3680043.2.1143.10")
        let versions = [Self.version(1, .draft, "Draft text."), Self.version(2, .signed, "Signed text, ünïcode.")]
        let text = try Self.dump(try DicomResults.structuredReport(record, versions: versions, organization: "Org A"))
        #expect(text.contains("[VERIFIED]") && text.contains("[COMPLETE]") && text.contains("Dr Ärztin") && text.contains("Org A"))
        #expect(text.contains("Signed text, ünïcode.") && text.contains("1.2.826.0.1.3680043.2.1143.10"))
        // Drafts never reach the PACS: the first signature replaces the analysis's own SR (version 0).
        #expect(text.contains(DicomResults.srInstanceUID(record, version: 0)), "the analysis's SR is the predecessor")
        #expect(!text.contains(DicomResults.srInstanceUID(record, version: 1)), "the draft's SR is not named")
        #expect(text.contains(DicomResults.srInstanceUID(record, version: 2)))

        // An amendment replaces the signed SR before it; the SR of version 2 as it was sent is version 2's alone.
        let amended = versions + [Self.version(3, .signed, "Amended text.")]
        let amendedText = try Self.dump(try DicomResults.structuredReport(record, versions: amended, organization: "Org A"))
        #expect(amendedText.contains(DicomResults.srInstanceUID(record, version: 2)) && amendedText.contains("Amended text."))
        #expect(!amendedText.contains(DicomResults.srInstanceUID(record, version: 0)))
        let asSent = try DicomResults.structuredReport(record, versions: amended.filter { $0.number <= 2 }, organization: "Org A")
        #expect(asSent == (try DicomResults.structuredReport(record, versions: versions, organization: "Org A")))
    }

    @Test func aSecondaryCaptureHasItsCaptionBurnedIn() throws {
        let record = Self.record()
        let image = PixelImage(width: 40, height: 30, channels: 3, pixels: [UInt8](repeating: 90, count: 40 * 30 * 3))
        let composed = BurnedInText.compose(image, lines: [DicomResults.burnedInNotice, "Brain tumour"])
        #expect(composed.width == 40 && composed.height > 30)
        #expect(composed.rgb.contains(255), "the caption is drawn")
        #expect(Array(composed.rgb.suffix(3)) == [90, 90, 90], "the image below it is untouched")
        let text = try Self.dump(try DicomResults.secondaryCapture(record, result: record.results[0], image: image))
        #expect(text.contains("BurnedInAnnotation") && text.contains("[YES]") && text.contains("[RGB]"))
        #expect(text.contains("(0028,0010) US \(composed.height)"))
    }

    @Test func wrappingKeepsWordsAndBreaksLongOnes() {
        #expect(BurnedInText.wrap("Decision support - not for diagnosis", 10) == ["Decision", "support -", "not for", "diagnosis"])
        #expect(BurnedInText.wrap("abcdefghijkl", 5) == ["abcde", "fghij", "kl"])
    }

    @Test func theCAPIReportsErrorsAsCodes() {
        var buffer = cdw_buffer()
        var err = [CChar](repeating: 0, count: 128)
        #expect(cdw_write_sr(nil, &buffer, &err, err.count) == CDW_ERR_INPUT && buffer.data == nil)
        var input = cdw_sc_input()   // no UIDs, no pixels
        #expect(cdw_write_sc(&input, &buffer, &err, err.count) == CDW_ERR_INPUT)
        #expect(String(cString: err) == "Study Instance UID is missing")
        cdw_buffer_free(&buffer)
    }
}
