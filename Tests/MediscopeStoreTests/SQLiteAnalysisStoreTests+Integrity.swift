import Foundation
import Testing
import TestSupport
@testable import MediscopeStore

// Keys, validation, garbage collection and crashes: a store never serves or keeps what it should not.
extension SQLiteAnalysisStoreTests {
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
        wrongCount.images[2].ref.byteCount = wrongCount.images[2].bytes.count + 1
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
}
