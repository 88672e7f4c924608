import Foundation
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeStore

/// Heatmaps drawn when first looked at, on every backend: stored as drawings, drawn once with the bytes
/// an analysis would have drawn at once, kept for every worker and host, and gone with their record.
@Suite(.firestoreEmulator) struct DrawnHeatmapContractTests {
    @Test(arguments: AnalysisBackend.all)
    func drawnOnFirstLookKeptAndDeletedWithTheRecord(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let drawn = try DrawnAnalysis()
        let created = try store.create(drawn.new)
        let read = try #require(try second().get(id: created.id, organizationId: "org-a"))
        #expect(read == created && read.results == drawn.new.results, "the drawing is stored with the record")
        for result in read.results {
            #expect(result.heatmap.byteCount == nil && result.heatmap.drawing != nil)
            #expect(try store.imageBytes(key: result.heatmap.key) == nil, "not drawn before it is looked at")
            #expect(try store.bytes(of: result.heatmap) == drawn.eager[result.id], "drawn: the eager bytes")
            #expect(try second().imageBytes(key: result.heatmap.key) == drawn.eager[result.id], "kept for everyone")
            #expect(try second().bytes(of: result.heatmap) == drawn.eager[result.id])
        }
        #expect(try store.delete(id: created.id, organizationId: "org-a"))
        for result in read.results { #expect(try second().imageBytes(key: result.heatmap.key) == nil, "gone with its record") }
        #expect(try second().imageBytes(key: drawn.lossless.ref.key) == nil)
    }

    /// Two records naming one drawing (the same scan analysed twice) share it until the last goes.
    @Test(arguments: AnalysisBackend.all)
    func aSharedDrawingStaysWhileARecordUsesIt(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let drawn = try DrawnAnalysis()
        let first = try store.create(drawn.new), other = try store.create(drawn.new)
        let heatmap = first.results[0].heatmap
        _ = try store.bytes(of: heatmap)
        #expect(try store.delete(id: first.id, organizationId: "org-a"))
        #expect(try store.bytes(of: other.results[0].heatmap) == drawn.eager[other.results[0].id])
    }

    /// Several workers looking at a heatmap for the first time at once: each gets the whole heatmap, and
    /// one file is left under its name, no temporary file beside it.
    @Test func firstLooksAtOnceAllGetTheHeatmapAndLeaveOneFile() throws {
        let folder = TemporaryFolder()
        let drawn = try DrawnAnalysis()
        let record = try SQLiteAnalysisStore(directory: folder.url).create(drawn.new)
        let heatmap = record.results[0].heatmap
        let stores = try (0..<6).map { _ in try SQLiteAnalysisStore(directory: folder.url) }
        let seen = LockedBox<[[UInt8]?]>([])
        DispatchQueue.concurrentPerform(iterations: stores.count) { i in
            let bytes = try? stores[i].bytes(of: heatmap)
            seen.append(bytes)
        }
        #expect(seen.value.count == stores.count && seen.value.allSatisfy { $0 == drawn.eager[record.results[0].id] })
        let files = try FileManager.default.subpathsOfDirectory(atPath: folder.url.path + "/blobs/drawn").filter { $0.contains(".") }
        #expect(files.count == 1 && files[0].hasSuffix("\(heatmap.key).webp"), "\(files)")
    }

    /// A heatmap kept after its record was deleted (drawn while the delete ran) is collected; one a
    /// record uses is not.
    @Test func garbageCollectionRemovesDrawnHeatmapsNoRecordUses() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let drawn = try DrawnAnalysis(), other = try DrawnAnalysis(seed: 2)
        let gone = try store.create(drawn.new), kept = try store.create(other.new)
        #expect(try store.delete(id: gone.id, organizationId: "org-a"))
        let late = gone.results[0].heatmap
        try store.keepDrawn(late, bytes: try #require(drawn.eager[gone.results[0].id]))
        _ = try store.bytes(of: kept.results[0].heatmap)
        #expect(store.imagePath(key: late.key) != nil)
        #expect(try store.collectGarbage(olderThan: 0) >= 1)
        #expect(store.imagePath(key: late.key) == nil, "no record uses it")
        #expect(store.imagePath(key: kept.results[0].heatmap.key) != nil, "its record uses it")
    }

    @Test(arguments: [AnalysisBackend.sqlite])
    func aDrawingThatDoesNotMatchItsKeyOrLacksItsScanIsRefused(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        var wrongKey = try DrawnAnalysis().new
        wrongKey.results[0].heatmap.drawing?.quality = 90
        var noScan = try DrawnAnalysis().new
        noScan.images.removeLast()
        var sized = try DrawnAnalysis().new
        sized.results[0].heatmap.byteCount = 10
        for bad in [wrongKey, noScan, sized] {
            #expect(throws: StoreError.self) { try store.create(bad) }
        }
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)
    }
}
