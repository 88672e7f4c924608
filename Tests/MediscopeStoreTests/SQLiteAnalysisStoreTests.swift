import Foundation
import Testing
import TestSupport
import MediscopeSQLite
@testable import MediscopeStore

@Suite struct SQLiteAnalysisStoreTests {
    // MARK: - Create / get

    @Test func createThenGetReturnsTheSameRecord() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let new = makeAnalysis()
        let before = Date()
        let created = try store.create(new)

        #expect(created.id.count == 26)
        #expect(SortableID.isValid(created.id))
        #expect(abs(created.createdAt.timeIntervalSince(before)) < 5)
        #expect(created.organizationId == "org-a")
        #expect(created.patient == new.patient)
        #expect(created.results == new.results)
        #expect(created.timingsMs == new.timingsMs)
        #expect(created.report == nil)

        let fetched = try #require(try store.get(id: created.id, organizationId: "org-a"))
        #expect(fetched == created)
        #expect(try store.get(id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", organizationId: "org-a") == nil)

        // Every image is stored under its key, bytes intact, with the right extension.
        for blob in new.images {
            let path = try #require(store.imagePath(key: blob.ref.key))
            #expect(path.hasPrefix(folder.path + "/blobs/\(blob.ref.key.prefix(2))/"))
            #expect(path.hasSuffix("/\(blob.ref.key).\(BlobFolder.fileExtension(contentType: blob.ref.contentType)!)"))
            #expect(try store.imageBytes(key: blob.ref.key) == blob.bytes)
        }
        // No temp files left behind.
        #expect(filesBelow(folder.path + "/blobs").allSatisfy { !$0.contains(".tmp-") })
    }

    @Test func probabilitiesStoredBeforeLabelTitlesStillRead() throws {
        // Records written before label titles existed have no "title" key.
        let old = try JSONDecoder().decode(StoredProbability.self, from: Data(#"{"label":"notumor","probability":0.25}"#.utf8))
        #expect(old == StoredProbability(label: "notumor", title: nil, probability: 0.25))
        let new = StoredProbability(label: "notumor", title: "No tumour", probability: 0.25)
        #expect(try JSONDecoder().decode(StoredProbability.self, from: JSONEncoder().encode(new)) == new)
    }

    // MARK: - List

    @Test func listPagesNewestFirstWithoutGapsOrDuplicates() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        var created: [AnalysisRecord] = []
        for i in 0..<23 { created.append(try store.create(makeAnalysis(patientId: "P-\(i % 4)", imageSize: 64))) }

        var seen: [AnalysisRecord] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try store.list(AnalysisQuery(organizationId: "org-a", limit: 5, cursor: cursor))
            #expect(page.items.count <= 5)
            seen += page.items
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 20

        #expect(pages == 5)
        #expect(seen.map(\.id) == created.reversed().map(\.id))
        #expect(Set(seen.map(\.id)).count == 23)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt && $0.id > $1.id })
        #expect(seen.first == created.last)

        // An exact multiple of the page size ends without an empty extra page.
        let exact = try store.list(AnalysisQuery(organizationId: "org-a", limit: 23))
        #expect(exact.items.count == 23)
        #expect(exact.nextCursor == nil)
    }

    @Test func recordsPageThroughEveryOrganisationInIdOrder() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        var created: [AnalysisRecord] = []
        for i in 0..<7 { created.append(try store.create(makeAnalysis(org: i.isMultiple(of: 2) ? "org-a" : "org-b", imageSize: 32))) }

        var seen: [AnalysisRecord] = []
        var after: String?
        while true {
            let page = try store.records(afterId: after, limit: 3)
            #expect(page.count <= 3)
            guard let last = page.last else { break }
            seen += page
            after = last.id
        }
        #expect(seen == created)
        #expect(try store.records(afterId: nil, limit: 0).count == 1)
    }

    /// A limit below 1 gives one record, above 100 at most 100 (the rest on the next page).
    @Test func listClampsTheLimitTo1Through100() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        for _ in 0..<105 { _ = try store.create(makeAnalysis(imageSize: 16)) }
        for low in [0, -7] {
            let page = try store.list(AnalysisQuery(organizationId: "org-a", limit: low))
            #expect(page.items.count == 1 && page.nextCursor != nil, "limit \(low)")
        }
        let page = try store.list(AnalysisQuery(organizationId: "org-a", limit: 10_000))
        #expect(page.items.count == 100 && page.nextCursor != nil)
        let rest = try store.list(AnalysisQuery(organizationId: "org-a", limit: 1000, cursor: page.nextCursor))
        #expect(rest.items.count == 5 && rest.nextCursor == nil)
    }

    @Test func patientFilterIsExact() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        var forP1: [String] = []
        for i in 0..<9 {
            let patient = ["P-1", "P-10", "p-1"][i % 3]
            let record = try store.create(makeAnalysis(patientId: patient, imageSize: 32))
            if patient == "P-1" { forP1.append(record.id) }
        }
        _ = try store.create(makeAnalysis(org: "org-b", patientId: "P-1", imageSize: 32))

        var ids: [String] = []
        var cursor: String?
        repeat {
            let page = try store.list(AnalysisQuery(organizationId: "org-a", patientId: "P-1", limit: 2, cursor: cursor))
            #expect(page.items.allSatisfy { $0.patient.patientId == "P-1" && $0.organizationId == "org-a" })
            ids += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(ids == forP1.reversed())
        #expect(try store.list(AnalysisQuery(organizationId: "org-a", patientId: "P-2")).items.isEmpty)
    }

    @Test func invalidCursorsAreRejected() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        _ = try store.create(makeAnalysis(imageSize: 32))
        let base64url = { (s: String) in
            Data(s.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_") }
        let bad = ["!!!", "", "not base64 at all", base64url("12345"), base64url("abc:01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                   base64url("123:short"), base64url("-5:01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                   base64url("123:01ARZ3NDEKTSV4RRFFQ69G5FA!"), "' OR 1=1 --", String(repeating: "A", count: 500)]
        for cursor in bad {
            do {
                _ = try store.list(AnalysisQuery(organizationId: "org-a", cursor: cursor))
                Issue.record("cursor \(cursor) was accepted")
            } catch {
                #expect(error.kind == .invalidCursor)
            }
        }
        // A well-formed cursor works, and round-trips.
        let cursor = SQLiteAnalysisStore.encodeCursor(ms: 1_700_000_000_000, id: "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        #expect(!cursor.contains("=") && !cursor.contains("+") && !cursor.contains("/"))
        let decoded = try SQLiteAnalysisStore.decodeCursor(cursor)
        #expect(decoded.0 == 1_700_000_000_000 && decoded.1 == "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        #expect(try store.list(AnalysisQuery(organizationId: "org-a", cursor: cursor)).items.isEmpty)
    }

    // MARK: - Organisations

    @Test func otherOrganisationsSeeNothing() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let new = makeAnalysis(org: "org-a", imageSize: 64)
        let record = try store.create(new)

        #expect(try store.get(id: record.id, organizationId: "org-b") == nil)
        #expect(try store.list(AnalysisQuery(organizationId: "org-b")).items.isEmpty)
        #expect(try store.list(AnalysisQuery(organizationId: "org-b", patientId: "P-001")).items.isEmpty)
        #expect(try store.delete(id: record.id, organizationId: "org-b") == false)

        // Still there, images included, for its own organisation.
        #expect(try store.get(id: record.id, organizationId: "org-a") == record)
        #expect(new.images.allSatisfy { store.imagePath(key: $0.ref.key) != nil })
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.map(\.id) == [record.id])
    }

    // MARK: - Delete

    @Test func deleteRemovesTheRecordAndOnlyImagesNoOtherRecordUses() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let sharedScan = randomBytes(1000)
        let first = makeAnalysis(scanBytes: sharedScan, imageSize: 500)
        let second = makeAnalysis(scanBytes: sharedScan, imageSize: 500)
        let a = try store.create(first)
        let b = try store.create(second)
        #expect(a.scan.key == b.scan.key)

        #expect(try store.delete(id: a.id, organizationId: "org-a"))
        #expect(try store.get(id: a.id, organizationId: "org-a") == nil)
        #expect(try store.delete(id: a.id, organizationId: "org-a") == false)
        // The shared scan survives; the first record's own heatmaps are gone.
        #expect(store.imagePath(key: a.scan.key) != nil)
        for result in a.results { #expect(store.imagePath(key: result.heatmap.key) == nil) }
        for result in b.results { #expect(store.imagePath(key: result.heatmap.key) != nil) }
        #expect(try store.get(id: b.id, organizationId: "org-a") == b)

        #expect(try store.delete(id: b.id, organizationId: "org-a"))
        #expect(store.imagePath(key: b.scan.key) == nil)
        #expect(filesBelow(folder.path + "/blobs").isEmpty)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)
    }
}
