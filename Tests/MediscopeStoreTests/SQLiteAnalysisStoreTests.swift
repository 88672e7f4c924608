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

    @Test func listClampsTheLimit() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        for _ in 0..<3 { _ = try store.create(makeAnalysis(imageSize: 32)) }
        let zero = try store.list(AnalysisQuery(organizationId: "org-a", limit: 0))
        #expect(zero.items.count == 1)
        #expect(zero.nextCursor != nil)
        let negative = try store.list(AnalysisQuery(organizationId: "org-a", limit: -7))
        #expect(negative.items.count == 1)
        let huge = try store.list(AnalysisQuery(organizationId: "org-a", limit: 10_000))
        #expect(huge.items.count == 3)
        #expect(huge.nextCursor == nil)
    }

    @Test func listClampsTheLimitTo100() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        for _ in 0..<105 { _ = try store.create(makeAnalysis(imageSize: 16)) }
        let page = try store.list(AnalysisQuery(organizationId: "org-a", limit: 1000))
        #expect(page.items.count == 100)
        #expect(page.nextCursor != nil)
        let rest = try store.list(AnalysisQuery(organizationId: "org-a", limit: 1000, cursor: page.nextCursor))
        #expect(rest.items.count == 5)
        #expect(rest.nextCursor == nil)
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

    // MARK: - Keys and validation

    @Test func badKeysNeverTouchTheFilesystem() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let record = try store.create(makeAnalysis(imageSize: 64))
        // A file a traversal would reach.
        _ = FileManager.default.createFile(atPath: folder.path + "/secret.jpg", contents: Data("secret".utf8))
        let bad = ["../etc/passwd", "../../secret", "../secret.jpg", "/etc/passwd", "",
                   record.scan.key.uppercased(), String(record.scan.key.dropLast()), record.scan.key + "0",
                   record.scan.key + ".jpg", "ab/cd/" + record.scan.key, String(repeating: "g", count: 64),
                   "../../" + String(record.scan.key.dropFirst(6))]
        for key in bad {
            #expect(store.imagePath(key: key) == nil, "key \(key)")
            #expect(try store.imageBytes(key: key) == nil, "key \(key)")
        }
        #expect(store.imagePath(key: record.scan.key) != nil)
        #expect(store.imagePath(key: String(repeating: "0", count: 64)) == nil)
    }

    @Test func createRejectsInconsistentImages() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)

        var wrongHash = makeAnalysis(imageSize: 64)
        wrongHash.images[0].bytes[0] ^= 0xff
        var traversal = makeAnalysis(imageSize: 64)
        traversal.images[1].ref.key = "../../../../tmp/evil"
        var wrongCount = makeAnalysis(imageSize: 64)
        wrongCount.images[2].ref.byteCount += 1
        var badType = makeAnalysis(imageSize: 64)
        badType.images[0] = ImageBlob.make(bytes: badType.images[0].bytes, contentType: "text/html", width: 1, height: 1)
        var missingHeatmap = makeAnalysis(imageSize: 64)
        missingHeatmap.images.removeLast()
        var missingScan = makeAnalysis(imageSize: 64)
        missingScan.images.removeFirst()
        var noOrg = makeAnalysis(imageSize: 64)
        noOrg.organizationId = ""
        var noPatient = makeAnalysis(imageSize: 64)
        noPatient.patient.patientId = ""
        var nanTiming = makeAnalysis(imageSize: 64)
        nanTiming.timingsMs["x"] = .nan

        for (name, analysis) in [("wrongHash", wrongHash), ("traversal", traversal), ("wrongCount", wrongCount),
                                 ("badType", badType), ("missingHeatmap", missingHeatmap), ("missingScan", missingScan),
                                 ("noOrg", noOrg), ("noPatient", noPatient), ("nanTiming", nanTiming)] {
            do {
                _ = try store.create(analysis)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.kind == .invalidRecord, "\(name): \(error)")
            }
        }
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)
        #expect(try store.list(AnalysisQuery(organizationId: "")).items.isEmpty)
        // Every check happens before the first image is written: nothing to collect.
        #expect(filesBelow(folder.path + "/blobs").isEmpty)
        #expect(!fileExists("/tmp/evil.webp"))
    }

    // MARK: - Garbage collection and crashes

    @Test func garbageCollectionRemovesOldOrphansOnly() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let kept = try store.create(makeAnalysis(imageSize: 128))

        let oldOrphan = ImageBlob.make(bytes: randomBytes(100), contentType: "image/png", width: 1, height: 1)
        let youngOrphan = ImageBlob.make(bytes: randomBytes(100), contentType: "image/jpeg", width: 1, height: 1)
        try store.blobs.write(key: oldOrphan.ref.key, ext: "png", bytes: oldOrphan.bytes)
        try store.blobs.write(key: youngOrphan.ref.key, ext: "jpg", bytes: youngOrphan.bytes)
        let old = Date().addingTimeInterval(-7200)
        try setModificationDate(try #require(store.imagePath(key: oldOrphan.ref.key)), old)
        // Referenced images are old too: age alone must not remove them.
        for key in [kept.scan.key] + kept.results.map(\.heatmap.key) {
            try setModificationDate(try #require(store.imagePath(key: key)), old)
        }
        // A stale temp file from an interrupted write, and a fresh one (a write in flight).
        let tempDir = store.blobs.folder(forKey: oldOrphan.ref.key)
        _ = FileManager.default.createFile(atPath: tempDir + "/.tmp-123", contents: Data([1, 2, 3]))
        try setModificationDate(tempDir + "/.tmp-123", old)
        _ = FileManager.default.createFile(atPath: tempDir + "/.tmp-456", contents: Data([1, 2, 3]))

        let removed = try store.collectGarbage(olderThan: 3600)
        #expect(removed == 2)
        #expect(store.imagePath(key: oldOrphan.ref.key) == nil)
        #expect(!fileExists(tempDir + "/.tmp-123"))
        #expect(fileExists(tempDir + "/.tmp-456"))
        #expect(store.imagePath(key: youngOrphan.ref.key) != nil)
        #expect(store.imagePath(key: kept.scan.key) != nil)
        #expect(kept.results.allSatisfy { store.imagePath(key: $0.heatmap.key) != nil })
        #expect(try store.get(id: kept.id, organizationId: "org-a") == kept)

        // Opening the store collects with a 1-hour age: the young orphan stays, until it is old.
        try setModificationDate(try #require(store.imagePath(key: youngOrphan.ref.key)), old)
        let reopened = try SQLiteAnalysisStore(directory: folder.url)
        #expect(reopened.imagePath(key: youngOrphan.ref.key) == nil)
        #expect(reopened.imagePath(key: kept.scan.key) != nil)
    }

    @Test func crashAfterImagesBeforeInsertLeavesOnlyOrphans() throws {
        struct SimulatedCrash: Error {}
        let folder = TemporaryFolder()
        let crashing = try SQLiteAnalysisStore(
            directory: folder.url, hooks: .init(afterImagesWritten: { throw SimulatedCrash() }))
        let new = makeAnalysis(imageSize: 256)
        #expect(throws: StoreError.self) { _ = try crashing.create(new) }
        // The images are durable on disk, but no record is visible.
        #expect(new.images.allSatisfy { crashing.imagePath(key: $0.ref.key) != nil })
        #expect(try crashing.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)

        // After the "restart", a collection removes the orphans once they are old enough.
        let store = try SQLiteAnalysisStore(directory: folder.url)
        #expect(new.images.allSatisfy { store.imagePath(key: $0.ref.key) != nil })   // younger than 1 h: kept
        #expect(try store.collectGarbage(olderThan: 0) == 3)
        #expect(filesBelow(folder.path + "/blobs").isEmpty)
    }

    @Test func failureBeforeCommitRollsBackRecordAndReferences() throws {
        struct SimulatedCrash: Error {}
        let folder = TemporaryFolder()
        let crashing = try SQLiteAnalysisStore(
            directory: folder.url, hooks: .init(beforeCommit: { throw SimulatedCrash() }))
        let new = makeAnalysis(imageSize: 256)
        do {
            _ = try crashing.create(new)
            Issue.record("create succeeded")
        } catch {
            #expect(error.message.contains("SimulatedCrash"))
        }
        let store = try SQLiteAnalysisStore(directory: folder.url)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)
        // No image reference survived the rollback: every image is collectable.
        #expect(try store.collectGarbage(olderThan: 0) == 3)
        // And the store still works afterwards.
        let record = try store.create(new)
        #expect(try store.get(id: record.id, organizationId: "org-a") == record)
    }

    @Test func createRestoresAnImageRemovedBeforeItTookTheLock() throws {
        // A concurrent delete/GC may unlink an unreferenced image that create() found in place; create()
        // re-checks under the write lock and rewrites it.
        let folder = TemporaryFolder()
        let new = makeAnalysis(imageSize: 256)
        let blobsRoot = folder.path + "/blobs"
        let store = try SQLiteAnalysisStore(directory: folder.url, hooks: .init(afterImagesWritten: {
            for blob in new.images {
                let ext = BlobFolder.fileExtension(contentType: blob.ref.contentType)!
                unlink(BlobFolder(root: blobsRoot).path(forKey: blob.ref.key, ext: ext))
            }
        }))
        let record = try store.create(new)
        for blob in new.images { #expect(try store.imageBytes(key: blob.ref.key) == blob.bytes) }
        #expect(try store.get(id: record.id, organizationId: "org-a") == record)
    }

    // MARK: - Durability and concurrency

    @Test func dataSurvivesReopening() throws {
        let folder = TemporaryFolder()
        var records: [AnalysisRecord] = []
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            for i in 0..<5 { records.append(try store.create(makeAnalysis(patientId: "P-\(i)", imageSize: 300))) }
            #expect(try store.delete(id: records[0].id, organizationId: "org-a"))
        }
        let reopened = try SQLiteAnalysisStore(directory: folder.url)
        #expect(try reopened.get(id: records[0].id, organizationId: "org-a") == nil)
        for record in records.dropFirst() {
            #expect(try reopened.get(id: record.id, organizationId: "org-a") == record)
            #expect(reopened.imagePath(key: record.scan.key) != nil)
        }
        #expect(try reopened.list(AnalysisQuery(organizationId: "org-a")).items.map(\.id) == records.dropFirst().reversed().map(\.id))
        try reopened.checkReady()
        // The journal is WAL (so concurrent readers and one writer across processes).
        #expect(fileExists(folder.path + "/mediscope.sqlite-wal"))
    }

    @Test func twoConnectionsWritingAtOnceLoseNothing() async throws {
        let folder = TemporaryFolder()
        let url = folder.url
        let storeA = try SQLiteAnalysisStore(directory: url)
        let storeB = try SQLiteAnalysisStore(directory: url)   // a second, independent SQLite connection
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for store in [storeA, storeB] {
                group.addTask {
                    // Plain threads, not the cooperative pool: create() blocks on fsync and on SQLite's lock.
                    try await withCheckedThrowingContinuation { continuation in
                        Thread.detachNewThread {
                            do {
                                var ids: [String] = []
                                for i in 0..<50 { ids.append(try store.create(makeAnalysis(patientId: "P-\(i)", imageSize: 512)).id) }
                                continuation.resume(returning: ids)
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        }
                    }
                }
            }
            var all: [String] = []
            for try await ids in group { all += ids }
            return all
        }
        #expect(ids.count == 100)
        #expect(Set(ids).count == 100)
        var listed: [String] = []
        var cursor: String?
        repeat {
            let page = try storeA.list(AnalysisQuery(organizationId: "org-a", limit: 100, cursor: cursor))
            listed += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(Set(listed) == Set(ids))
        #expect(listed.count == 100)
    }

    @Test func concurrentFirstOpensAllMigrate() async throws {
        let folder = TemporaryFolder()
        let url = folder.url
        let results = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        Thread.detachNewThread {
                            do {
                                let store = try SQLiteAnalysisStore(directory: url)
                                _ = try store.create(makeAnalysis(imageSize: 32))
                                continuation.resume(returning: nil)
                            } catch {
                                continuation.resume(returning: "\(error)")
                            }
                        }
                    }
                }
            }
            var errors: [String] = []
            for await result in group { if let result { errors.append(result) } }
            return errors
        }
        #expect(results.isEmpty, "\(results)")
        let store = try SQLiteAnalysisStore(directory: url)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.count == 6)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3"),
                   "needs the sqlite3 command-line tool (Debian package sqlite3)"))
    func waitsForAnotherProcessHoldingTheWriteLock() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let marker = folder.path + "/locked"
        // Another process takes the write lock, signals, holds it for a second, then commits.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [folder.path + "/mediscope.sqlite"]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(Data("""
            .timeout 5000
            BEGIN IMMEDIATE;
            .shell touch \(marker)
            .shell sleep 3
            COMMIT;
            .quit

            """.utf8))
        try stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while !fileExists(marker) && Date() < deadline { usleep(10_000) }
        #expect(fileExists(marker))

        let start = Date()
        let record = try store.create(makeAnalysis(imageSize: 64))
        let waited = Date().timeIntervalSince(start)
        process.waitUntilExit()
        #expect(waited > 0.5, "create did not wait for the other process's lock (\(waited) s)")
        #expect(try store.get(id: record.id, organizationId: "org-a") == record)
    }

    // MARK: - Failures

    @Test func corruptDatabaseFileGivesUnavailable() throws {
        let folder = TemporaryFolder()
        var garbage = randomBytes(16_384)
        garbage.replaceSubrange(0..<6, with: Array("GARBGE".utf8))
        _ = FileManager.default.createFile(atPath: folder.path + "/mediscope.sqlite", contents: Data(garbage))
        do {
            _ = try SQLiteAnalysisStore(directory: folder.url)
            Issue.record("opened a corrupt database")
        } catch {
            #expect(error.kind == .unavailable, "\(error)")
        }
    }

    @Test func databaseCorruptedAfterTheHeaderGivesAnErrorNotACrash() throws {
        let folder = TemporaryFolder()
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            for _ in 0..<3 { _ = try store.create(makeAnalysis(imageSize: 32)) }
        }
        // Keep SQLite's header, trash the pages after it (and drop the WAL so the trash is what is read).
        let path = folder.path + "/mediscope.sqlite"
        try? FileManager.default.removeItem(atPath: path + "-wal")
        try? FileManager.default.removeItem(atPath: path + "-shm")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count > 200)
        for i in 100..<bytes.count { bytes[i] = UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            _ = try store.list(AnalysisQuery(organizationId: "org-a"))
            Issue.record("read a corrupt database without error")
        } catch {
            #expect([StoreError.Kind.unavailable, .io].contains(error.kind), "\(error)")
        }
    }

    @Test func checkReadyFailsWhenTheImageFolderIsNotWritable() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        try store.checkReady()
        // Replace the folder by a plain file: nothing can be created below it (even as root).
        try FileManager.default.removeItem(atPath: folder.path + "/blobs")
        _ = FileManager.default.createFile(atPath: folder.path + "/blobs", contents: Data())
        #expect(throws: StoreError.self) { try store.checkReady() }
        do {
            _ = try store.create(makeAnalysis(imageSize: 32))
            Issue.record("create succeeded without an image folder")
        } catch {
            #expect(error.kind == .io, "\(error)")
        }
    }

    @Test func storeFolderThatIsAFileGivesAnError() throws {
        let folder = TemporaryFolder()
        let file = folder.url.appendingPathComponent("file")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data("x".utf8))
        #expect(throws: StoreError.self) { _ = try SQLiteAnalysisStore(directory: file) }
    }
}

/// Who may read what a store writes: patient data in the database is the service user's alone; images
/// are files nginx (another user) reads by exact path, in folders no one else may list.
@Suite struct StoreFileModeTests {
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    @Test func theDatabaseIsTheServiceUsersAloneAndImageFoldersCannotBeListed() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let record = try store.create(makeAnalysis(imageSize: 16))
        let database = folder.path + "/" + SQLiteAnalysisStore.databaseFileName
        for path in [database, database + "-wal", database + "-shm"] {
            #expect(Self.mode(path) == 0o600, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
        let image = try #require(store.imagePath(key: record.scan.key))
        #expect(Self.mode(image) == 0o644, "nginx reads the image itself")
        let keyFolder = (image as NSString).deletingLastPathComponent
        for path in [folder.path + "/blobs", (keyFolder as NSString).deletingLastPathComponent, keyFolder] {
            #expect(Self.mode(path) == 0o711, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
    }

    @Test func aDatabaseLeftReadableByAnEarlierVersionIsTightenedWhenOpened() throws {
        let folder = TemporaryFolder()
        let database = folder.path + "/" + SQLiteAnalysisStore.databaseFileName
        let record = try SQLiteAnalysisStore(directory: folder.url).create(makeAnalysis(imageSize: 16))
        for path in [database, database + "-wal", database + "-shm"] where Self.mode(path) != nil {
            #expect(chmod(path, 0o644) == 0)
        }
        let reopened = try SQLiteAnalysisStore(directory: folder.url)
        for path in [database, database + "-wal", database + "-shm"] where Self.mode(path) != nil {
            #expect(Self.mode(path) == 0o600, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
        #expect(try reopened.get(id: record.id, organizationId: "org-a") == record, "nothing lost")
    }
}
