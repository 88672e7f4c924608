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
