import Foundation
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeStore

extension StoreMigration {
    /// Analyses in id order, a page at a time: the page's Firestore copies are read in one call; each
    /// missing record is written with its images in one atomic commit (`FirestoreAnalysisStore.insert`,
    /// `exists: false` on the record), its images read from disk just before.
    func copyAnalyses(_ source: SQLiteAnalysisStore, reportVersions: SQLiteReportStore?) throws(MigrationError) {
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
                if let reportVersions { try copyReportVersions(of: record, from: reportVersions) }
            }
            after = last.id
        }
    }

    /// The analysis's report versions (drafts, edits, signatures, amendments), in order; a version already
    /// in Firestore with that number is left as it is (`exists: false`).
    func copyReportVersions(of record: AnalysisRecord, from source: SQLiteReportStore) throws(MigrationError) {
        let versions = try reading("read the report versions") { () throws(StoreError) in
            try source.versions(analysisId: record.id, organizationId: record.organizationId)
        }
        guard !versions.isEmpty else { return }
        let stored = try reading("read Firestore's report versions") { () throws(StoreError) in
            try reports.versions(analysisId: record.id, organizationId: record.organizationId)
        }
        for version in versions {
            try decide(.reportVersions, "\(record.id)-\(version.number)") { () throws(StoreError) -> Outcome in
                if let found = stored.first(where: { $0.number == version.number }) { return found == version ? .alreadyThere : .differs }
                if dryRun { return .copied }
                return try Self.appendOnce(version, to: reports) ? .copied : .alreadyThere
            }
        }
    }

    /// Appends `version`; false when Firestore holds that number already (written meanwhile).
    static func appendOnce(_ version: ReportVersion, to reports: FirestoreReportStore) throws(StoreError) -> Bool {
        do {
            try reports.append(version)
            return true
        } catch {
            if error.kind == .conflict { return false }
            throw error
        }
    }

    /// The record's images (the scan, then each heatmap; once each) with their bytes from `source`. A
    /// heatmap drawn when first looked at is not an image: the lossless scan it is drawn on is, and
    /// Firestore's hosts draw it when it is first looked at there.
    /// - Throws: `invalidRecord` when one is missing from disk; `io` when one cannot be read.
    static func images(of record: AnalysisRecord, in source: SQLiteAnalysisStore) throws(StoreError) -> [ImageBlob] {
        var seen = Set<String>()
        var blobs: [ImageBlob] = []
        let stored = [record.scan] + record.results.map { result in
            guard let drawing = result.heatmap.drawing else { return result.heatmap }
            return drawing.scanImage(width: result.heatmap.width, height: result.heatmap.height)
        }
        for var ref in stored where seen.insert(ref.key).inserted {
            guard let bytes = try source.imageBytes(key: ref.key) else {
                throw StoreError(.invalidRecord, "image \(ref.key) is missing from the SQLite store")
            }
            ref.byteCount = bytes.count
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
                  timingsMs: record.timingsMs, images: images, source: record.source,
                  inputCheck: record.inputCheck,
                  idempotency: record.idempotencyFingerprint.map { IdempotentCreate(id: record.id, fingerprint: $0) })
    }
}
