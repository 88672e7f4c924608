import Foundation
import FirestoreTestKit
import MediscopeFirestoreStore
import Testing
import TestSupport
@testable import MediscopeStore

/// A backend the `ReportStore` contract runs against; each `make` gives an empty store and a second
/// instance over the same data (another worker or host).
struct ReportBackend: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () throws -> (store: any ReportStore, second: () throws -> any ReportStore, keepAlive: AnyObject)
    var testDescription: String { name }

    static let all: [ReportBackend] = [.sqlite, .firestore]

    static let sqlite = ReportBackend(name: "SQLite") {
        let folder = TemporaryFolder()
        return (try SQLiteReportStore(directory: folder.url), { try SQLiteReportStore(directory: folder.url) }, folder)
    }

    static let firestore = ReportBackend(name: "Firestore (emulator)") {
        let emulator = try SharedEmulator.get()
        let project = "reports-\(UUID().uuidString.prefix(8).lowercased())"
        return (FirestoreReportStore(client: emulator.client(projectId: project)),
                { FirestoreReportStore(client: emulator.client(projectId: project)) }, emulator)
    }
}

@Suite(.firestoreEmulator) struct ReportStoreContractTests {
    static func version(_ number: Int, analysis: String = "01J00000000000000000000001", org: String = "org-a",
                        status: ReportVersion.Status = .draft, text: String = "text") -> ReportVersion {
        ReportVersion(analysisId: analysis, organizationId: org, number: number, status: status, text: text + " \(number)",
                      origin: number == 1 ? .llm : .clinician, model: number == 1 ? "llama" : nil,
                      authorId: number == 1 ? nil : "U1", authorName: number == 1 ? nil : "Dr Ада Lovelace",
                      createdAt: Date(millisecondsSince1970: 1_750_000_000_000 + Int64(number)))
    }

    @Test(arguments: ReportBackend.all)
    func versionsAreNumberedAppendOnlyAndShared(_ backend: ReportBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        try store.append(Self.version(1))
        try second().append(Self.version(2, text: "edited <b>bold</b> & more\nline two"))
        try store.append(Self.version(3, status: .signed))
        let read = try second().versions(analysisId: Self.version(1).analysisId, organizationId: "org-a")
        #expect(read == [Self.version(1), Self.version(2, text: "edited <b>bold</b> & more\nline two"), Self.version(3, status: .signed)])
        #expect(try store.versions(analysisId: Self.version(1).analysisId, organizationId: "org-b").isEmpty, "organisations stay apart")
        #expect(try store.versions(analysisId: "01J00000000000000000000099", organizationId: "org-a").isEmpty)
    }

    @Test(arguments: ReportBackend.all)
    func aTakenNumberIsAConflictAndAGapIsRefused(_ backend: ReportBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        try store.append(Self.version(1))
        #expect { try second().append(Self.version(1, text: "another host")) } throws: { ($0 as? StoreError)?.kind == .conflict }
        #expect { try store.append(Self.version(3)) } throws: { ($0 as? StoreError)?.kind == .invalidRecord }
        #expect(try store.versions(analysisId: Self.version(1).analysisId, organizationId: "org-a") == [Self.version(1)])
    }

    @Test(arguments: ReportBackend.all)
    func deleteAllRemovesOneAnalysisVersionsOnly(_ backend: ReportBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let other = "01J00000000000000000000002"
        try store.append(Self.version(1))
        try store.append(Self.version(2))
        try store.append(Self.version(1, analysis: other))
        try store.deleteAll(analysisId: Self.version(1).analysisId, organizationId: "org-a")
        #expect(try store.versions(analysisId: Self.version(1).analysisId, organizationId: "org-a").isEmpty)
        #expect(try store.versions(analysisId: other, organizationId: "org-a").count == 1)
    }

    /// Deleting an analysis closes its report first: refused once a version is signed (a signed report is
    /// kept); else no version lands afterwards, from this instance or another, not even a late draft's
    /// version 1, and a closed report stays closed when its versions are deleted.
    @Test(arguments: ReportBackend.all)
    func aSignedReportIsNeverClosedAndAClosedOneTakesNoVersion(_ backend: ReportBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        func refused(_ version: ReportVersion) {
            #expect { try second().append(version) } throws: { ($0 as? StoreError)?.kind == .conflict }
        }
        let id = Self.version(1).analysisId, undrafted = "01J00000000000000000000003"
        #expect(try store.close(analysisId: undrafted, organizationId: "org-a") == .closed)
        refused(Self.version(1, analysis: undrafted))

        try store.append(Self.version(1))
        try store.append(Self.version(2))
        #expect(try store.close(analysisId: id, organizationId: "org-a") == .closed)
        #expect(try second().close(analysisId: id, organizationId: "org-a") == .closed, "closing twice is closing once")
        refused(Self.version(3, status: .signed))
        #expect(try store.versions(analysisId: id, organizationId: "org-a") == [Self.version(1), Self.version(2)],
                "a closed report reads as before")

        try second().reopen(analysisId: id, organizationId: "org-a")
        try second().append(Self.version(3, status: .signed))
        #expect(try store.close(analysisId: id, organizationId: "org-a") == .signed)
        try store.append(Self.version(4, status: .signed))   // untouched: an amendment goes on
        #expect(try store.versions(analysisId: id, organizationId: "org-a").count == 4)

        try store.deleteAll(analysisId: undrafted, organizationId: "org-a")
        refused(Self.version(1, analysis: undrafted))
        #expect(try store.versions(analysisId: undrafted, organizationId: "org-a").isEmpty)
    }
}
