import Foundation
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeStore

/// Every stored analysis keeps its input check (issue 22) in every backend, and records stored before the
/// check existed read as `InputCheck.notRecorded`, never as an error or as "in scope".
@Suite(.firestoreEmulator) struct InputCheckRecordTests {
    static let outOfScope = InputCheck(verdict: .outOfScope, reasons: [
        InputCheck.Reason(code: InputCheck.Code.colour, message: "62% of the image is in colour; this model expects greyscale MRI."),
        InputCheck.Reason(code: InputCheck.Code.unfamiliar, message: "The image looks unlike the images this model was made for."),
    ], score: 131.25, threshold: 74.5, method: "image-checks+mahalanobis-sqrt")

    @Test(arguments: AnalysisBackend.all)
    func theInputCheckRoundTrips(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        var new = makeAnalysis(patientId: "IC-1")
        new.inputCheck = Self.outOfScope
        let created = try store.create(new)
        #expect(created.inputCheck == Self.outOfScope)
        #expect(try second().get(id: created.id, organizationId: "org-a")?.inputCheck == Self.outOfScope)
        #expect(try second().list(AnalysisQuery(organizationId: "org-a")).items.first?.inputCheck == Self.outOfScope)

        // Null score and threshold (image checks only) stay null, not zero.
        new.inputCheck = InputCheck(verdict: .outOfScope, reasons: [InputCheck.Reason(code: "uniform", message: "blank")],
                                    method: "image-checks")
        let imageChecksOnly = try store.create(new)
        let read = try #require(try second().get(id: imageChecksOnly.id, organizationId: "org-a"))
        #expect(read.inputCheck == new.inputCheck && read.inputCheck.score == nil && read.inputCheck.threshold == nil)
    }

    @Test func aRecordWithoutTheFieldReadsAsNotRecorded() throws {
        // An outbox entry queued by the version before: the JSON has no inputCheck key.
        var new = makeAnalysis()
        new.inputCheck = Self.outOfScope
        let record = new.newRecord()
        var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
        #expect(json["inputCheck"] != nil)
        json["inputCheck"] = nil
        let old = try JSONDecoder().decode(AnalysisRecord.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(old.inputCheck == .notRecorded && old.inputCheck.verdict == .notChecked)
        #expect(old.inputCheck.reasons.map(\.code) == [InputCheck.Code.notRecorded])
        #expect(try JSONDecoder().decode(AnalysisRecord.self, from: JSONEncoder().encode(record)) == record)
    }

    /// A database made by the version before (no `input_check` column, migration "v3" not applied) is
    /// migrated when opened, and its records read as not recorded while new ones keep their check.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3"),
                   "needs the sqlite3 command-line tool (Debian package sqlite3)"))
    func anOlderDatabaseIsMigrated() throws {
        let folder = TemporaryFolder()
        var old: AnalysisRecord
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            old = try store.create(makeAnalysis(patientId: "OLD-1"))
        }
        // Back to the schema of the version before, as sqlite3 sees it.
        let sqlite = try runProcess(URL(fileURLWithPath: "/usr/bin/sqlite3"), [
            folder.path + "/" + SQLiteAnalysisStore.databaseFileName,
            "ALTER TABLE analyses DROP COLUMN input_check; DELETE FROM grdb_migrations WHERE identifier = 'v3 input check';"])
        #expect(sqlite.status == 0, "\(sqlite.stderr)")

        let store = try SQLiteAnalysisStore(directory: folder.url)
        old.inputCheck = .notRecorded
        #expect(try store.get(id: old.id, organizationId: "org-a") == old)
        var new = makeAnalysis(patientId: "NEW-1")
        new.inputCheck = Self.outOfScope
        let created = try store.create(new)
        #expect(try SQLiteAnalysisStore(directory: folder.url).get(id: created.id, organizationId: "org-a")?.inputCheck == Self.outOfScope)
    }
}
