import Foundation
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeStore

extension StoreMigration {
    /// Analyses in id order, a page at a time: the page's Firestore copies are read in one call; each
    /// missing record is written with its images in one atomic commit (`FirestoreAnalysisStore.insert`,
    /// `exists: false` on the record), its images read from disk just before.
    func copyAnalyses(_ source: SQLiteAnalysisStore) throws(MigrationError) {
        var after: String?
        while true {
            let page = try reading("read the analyses") { () throws(StoreError) in try source.records(afterId: after, limit: pageSize) }
            guard let last = page.last else { return }
            let stored = try reading("read Firestore's analyses") { () throws(StoreError) in try analyses.records(ids: page.map(\.id)) }
            for record in page {
                try decide(.analyses, record.id) { () throws(StoreError) -> Outcome in
                    if let found = stored[record.id] { return found == record ? .alreadyThere : .differs }
                    // The same checks as a create (digests, content types, Firestore's 1 MiB limit).
                    let images = try FirestoreAnalysisStore.validatedImages(NewAnalysis(record, images: try Self.images(of: record, in: source)))
                    if dryRun { return .copied }
                    do throws(FirestoreError) { try analyses.insert(record, images: images) } catch {
                        if error.status == .alreadyExists { return .alreadyThere }  // written meanwhile, or our own lost answer
                        throw Self.storeError(error)
                    }
                    return .copied
                }
            }
            after = last.id
        }
    }

    /// The record's images (the scan, then each heatmap; once each) with their bytes from `source`.
    /// - Throws: `invalidRecord` when one is missing from disk; `io` when one cannot be read.
    static func images(of record: AnalysisRecord, in source: SQLiteAnalysisStore) throws(StoreError) -> [ImageBlob] {
        var seen = Set<String>()
        var blobs: [ImageBlob] = []
        for ref in [record.scan] + record.results.map(\.heatmap) where seen.insert(ref.key).inserted {
            guard let bytes = try source.imageBytes(key: ref.key) else {
                throw StoreError(.invalidRecord, "image \(ref.key) is missing from the SQLite store")
            }
            blobs.append(ImageBlob(ref: ref, bytes: bytes))
        }
        return blobs
    }

    /// A refused write fails the record; anything else (down, credentials, permission) stops the run.
    static func storeError(_ error: FirestoreError) -> StoreError {
        switch error.status {
        case .invalidArgument, .failedPrecondition, .outOfRange:
            StoreError(.invalidRecord, "Firestore refused it: \(error.status.rawValue)")
        default:
            StoreError(.unavailable, "Firestore \(error.status.rawValue)")
        }
    }
}

extension NewAnalysis {
    /// `record`'s content with `images`, for the checks a create makes.
    init(_ record: AnalysisRecord, images: [ImageBlob]) {
        self.init(organizationId: record.organizationId, createdBy: record.createdBy, patient: record.patient,
                  imageWidth: record.imageWidth, imageHeight: record.imageHeight, scan: record.scan, results: record.results,
                  timingsMs: record.timingsMs, images: images, source: record.source)
    }
}
