import Foundation
import MediscopeStudies
import Testing
import TestSupport

/// The study index on a real SQLite file: one admission per organisation and SOP Instance UID, the same
/// bytes recognised, other bytes told apart, the series cap held in one transaction, counters, and the
/// series summary made from what the analyses found.
@Suite struct StudyIndexTests {
    let folder = TemporaryFolder("mediscope-studies")

    func instance(_ sop: String, series: String = "1.2.3.1", org: String = "org-a", number: Int? = nil) -> ReceivedInstanceEntry {
        ReceivedInstanceEntry(organizationId: org, studyInstanceUID: "1.2.3", seriesInstanceUID: series, sopInstanceUID: sop,
                              patientId: "P1", instanceNumber: number, transport: "c-store", sender: "PACS")
    }

    @Test func anInstanceIsAdmittedOnceItsBytesRecognisedAndOtherBytesRefused() throws {
        let index = try StudyIndex(directory: folder.url)
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "aa", maxPerSeries: 10) == .new(.received))
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "aa", maxPerSeries: 10) == .known(.received))
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "bb", maxPerSeries: 10) == .conflict)
        // Another organisation's copy is its own.
        #expect(try index.admit(instance("1.2.3.1.1", org: "org-b"), sha256: "bb", maxPerSeries: 10) == .new(.received))
        // A failed one sent again is admitted again; a withdrawn one is new again.
        try index.mark(organizationId: "org-a", sopInstanceUID: "1.2.3.1.1", state: .failed, reason: "models refused it")
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "aa", maxPerSeries: 10) == .new(.received))
        try index.withdraw(organizationId: "org-a", sopInstanceUID: "1.2.3.1.1")
        #expect(try index.entry(organizationId: "org-a", sopInstanceUID: "1.2.3.1.1") == nil)
        // Reopened: still there.
        #expect(try StudyIndex(directory: folder.url).entry(organizationId: "org-b", sopInstanceUID: "1.2.3.1.1")?.state == .received)
    }

    @Test func oneStudyHoldsOnePatientAndADeletedAnalysisIsForgotten() throws {
        let index = try StudyIndex(directory: folder.url)
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "a", maxPerSeries: 10) == .new(.received))
        var other = instance("1.2.3.1.2")
        other.patientId = "P2"
        #expect(try index.admit(other, sha256: "b", maxPerSeries: 10) == .otherPatient)
        var elsewhere = other
        elsewhere.organizationId = "org-b"
        #expect(try index.admit(elsewhere, sha256: "b", maxPerSeries: 10) == .new(.received), "another organisation's study is its own")
        try index.mark(organizationId: "org-a", sopInstanceUID: "1.2.3.1.1", state: .done, analysisId: "A1")
        #expect(try index.forget(analysisId: "A1", organizationId: "org-b") == 0)
        #expect(try index.forget(analysisId: "A1", organizationId: "org-a") == 1)
        #expect(try index.admit(instance("1.2.3.1.1"), sha256: "a", maxPerSeries: 10) == .new(.received))
    }

    @Test func instancesPastTheSeriesCapAreSkippedEvenFromTwoConnections() async throws {
        let first = try StudyIndex(directory: folder.url), second = try StudyIndex(directory: folder.url)
        let admissions = try await withThrowingTaskGroup(of: StudyIndex.Admission.self) { group in
            for n in 0..<12 {
                let index = n % 2 == 0 ? first : second
                group.addTask { try index.admit(self.instance("1.2.3.1.\(n)"), sha256: "d\(n)", maxPerSeries: 5) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(admissions.filter { $0 == .new(.received) }.count == 5)
        #expect(admissions.filter { $0 == .new(.skipped) }.count == 7)
        #expect(try first.countsByState() == [.received: 5, .skipped: 7])
        let skipped = try first.instances(organizationId: "org-a", studyInstanceUID: "1.2.3").filter { $0.state == .skipped }
        #expect(skipped.allSatisfy { $0.reason?.contains("cap of 5") == true })
    }

    @Test func pagesOfStudiesReceivedAtTheSameInstantLoseNone() throws {
        let index = try StudyIndex(directory: folder.url)
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        for (n, study) in ["1.2.5", "1.2.4", "1.2.6"].enumerated() {
            var e = instance("\(study).1.1")
            e.studyInstanceUID = study
            e.receivedAt = n == 2 ? t.addingTimeInterval(-1) : t
            _ = try index.admit(e, sha256: study, maxPerSeries: 10)
        }
        var seen: [String] = []
        var cursor: StudyIndex.StudyCursor?
        repeat {
            let page = try index.recentStudies(organizationId: "org-a", limit: 1, after: cursor)
            seen += page.map(\.studyInstanceUID)
            cursor = page.last
        } while cursor != nil
        #expect(seen == ["1.2.4", "1.2.5", "1.2.6"])
    }

    @Test func countersAddUpAcrossConnections() throws {
        let a = try StudyIndex(directory: folder.url), b = try StudyIndex(directory: folder.url)
        try a.count("associations:accepted")
        try b.count("associations:accepted", by: 2)
        try b.count("failures:c-store:C000")
        #expect(try a.counters() == ["associations:accepted": 3, "failures:c-store:C000": 1])
    }

    @Test func theSummaryCountsPredictionsAndFindsTheMostLikelySlice() throws {
        let index = try StudyIndex(directory: folder.url)
        let found: [(String, Double)] = [("no_tumor", 0.1), ("tumor", 0.93), ("tumor", 0.71)]
        for (n, (prediction, p)) in found.enumerated() {
            let sop = "1.2.3.1.\(n)"
            _ = try index.admit(instance(sop, number: n + 1), sha256: sop, maxPerSeries: 10)
            try index.mark(organizationId: "org-a", sopInstanceUID: sop, state: .done, analysisId: "A\(n)",
                           findings: [.init(result: "tumor-presence", title: "Tumour present", prediction: prediction,
                                            positiveProbability: p, positiveLabel: "tumor")],
                           outOfScope: n == 2)
        }
        _ = try index.admit(instance("1.2.3.1.9", number: 10), sha256: "x", maxPerSeries: 10)
        let entries = try index.instances(organizationId: "org-a", studyInstanceUID: "1.2.3")
        #expect(entries.map(\.instanceNumber) == [1, 2, 3, 10])
        let summary = SeriesSummary(entries)
        #expect(summary.state == "analysing")
        #expect(summary.counts["done"] == 3 && summary.counts["received"] == 1)
        #expect(summary.results.first?.predictions == ["tumor": 2, "no_tumor": 1])
        #expect(summary.highest.first?.analysisId == "A1" && summary.highest.first?.probability == 0.93)
        #expect(summary.outOfScope == 1)
        try index.mark(organizationId: "org-a", sopInstanceUID: "1.2.3.1.9", state: .failed, reason: "refused")
        #expect(SeriesSummary(try index.instances(organizationId: "org-a", studyInstanceUID: "1.2.3")).state == "done")
    }
}
