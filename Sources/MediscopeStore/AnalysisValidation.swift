import Foundation
import MediscopeEncoding
import MediscopeSQLite

extension NewAnalysis {
    /// Every check the `AnalysisStore` contract names, before anything is written: organisation and
    /// patient id present, positive size, keys of 64 lowercase hex chars that are the SHA-256 of their
    /// bytes (trusted for blobs from `ImageBlob.make`), supported content types, scan and heatmaps among
    /// the images. Returns each distinct image with its file extension. Throws `invalidRecord`.
    package func validatedImages() throws(StoreError) -> [(ImageBlob, String)] {
        let analysis = self
        func invalid(_ message: String) -> StoreError { StoreError(.invalidRecord, message) }
        guard !analysis.organizationId.isEmpty else { throw invalid("organizationId is empty") }
        guard !analysis.patient.patientId.isEmpty else { throw invalid("patient.patientId is empty") }
        guard analysis.imageWidth > 0, analysis.imageHeight > 0 else { throw invalid("image size must be positive") }
        if let keyed = analysis.idempotency {
            guard SortableID.isValid(keyed.id), BlobFolder.isValidKey(keyed.fingerprint) else {
                throw invalid("an idempotent create needs a valid id and a 64-hex-digit fingerprint")
            }
        }
        var images: [(ImageBlob, String)] = []
        var keys = Set<String>()
        for blob in analysis.images {
            let ref = blob.ref
            guard BlobFolder.isValidKey(ref.key) else { throw invalid("image key is not 64 lowercase hex chars") }
            guard let ext = BlobFolder.fileExtension(contentType: ref.contentType) else {
                throw invalid("unsupported image content type \(ref.contentType)")
            }
            guard ref.byteCount == blob.bytes.count else { throw invalid("image \(ref.key): byteCount does not match the bytes") }
            guard !blob.bytes.isEmpty else { throw invalid("image \(ref.key) is empty") }
            guard blob.keyIsDigest || SHA256Hex.digest(blob.bytes) == ref.key else {
                throw invalid("image key \(ref.key) is not the SHA-256 of its bytes")
            }
            if keys.insert(ref.key).inserted { images.append((blob, ext)) }
        }
        guard keys.contains(analysis.scan.key) else { throw invalid("scan image \(analysis.scan.key) is not among the images") }
        for result in analysis.results {
            let heatmap = result.heatmap
            guard let drawing = heatmap.drawing else {
                guard keys.contains(heatmap.key) else { throw invalid("heatmap \(heatmap.key) of result \(result.id) is not among the images") }
                continue
            }
            // Drawn when first looked at: its scan must be stored, and its key must name what it is drawn from.
            guard keys.contains(drawing.scan) else {
                throw invalid("the scan heatmap \(heatmap.key) of result \(result.id) is drawn on is not among the images")
            }
            guard let format = heatmap.format, format != .dicom, drawing.key(format: format) == heatmap.key,
                  heatmap.byteCount == nil else {
                throw invalid("heatmap \(heatmap.key) of result \(result.id): its key is not the SHA-256 of what it is drawn from")
            }
        }
        return images
    }

    /// The keys of the heatmaps drawn when first looked at (`ImageRef.drawing`), once each: kept by
    /// `keepDrawn`, they go with the last record that names them.
    package var drawnHeatmapKeys: [String] { results.drawnHeatmapKeys }
}

extension NewAnalysis {
    /// The record this analysis becomes under a fresh time-ordered id (`SortableID.Generator.shared`),
    /// or the id its Idempotency-Key gives, created now to the millisecond, with no report yet. Every
    /// backend's `create` names records so.
    package func newRecord() -> AnalysisRecord {
        let (generated, ms) = SortableID.Generator.shared.next()
        return AnalysisRecord(
            id: idempotency?.id ?? generated, createdAt: Date(millisecondsSince1970: ms), organizationId: organizationId,
            createdBy: createdBy, patient: patient, imageWidth: imageWidth, imageHeight: imageHeight, scan: scan,
            results: results, timingsMs: timingsMs, report: nil, source: source, inputCheck: inputCheck,
            idempotencyFingerprint: idempotency?.fingerprint)
    }
}

extension [StoredResult] {
    /// The keys of the heatmaps among these results that are drawn when first looked at, once each.
    package var drawnHeatmapKeys: [String] {
        var seen = Set<String>()
        return compactMap { $0.heatmap.drawing == nil ? nil : $0.heatmap.key }.filter { seen.insert($0).inserted }
    }
}

/// The opaque paging cursor of `AnalysisStore.list`: base64url of "createdAtMs:id" of the last record
/// of a page. Shared by every backend so a cursor means the same everywhere.
package enum AnalysisCursor {
    package static func encode(ms: Int64, id: String) -> String {
        Base64URL.encode("\(ms):\(id)".utf8)
    }

    /// Throws `invalidCursor` for anything `encode` did not make.
    package static func decode(_ cursor: String) throws(StoreError) -> (Int64, String) {
        let bad = StoreError(.invalidCursor, "cursor is not one this server issued")
        guard !cursor.isEmpty, cursor.utf8.count <= 100, let bytes = Base64URL.decode(cursor),
              let text = String(bytes: bytes, encoding: .utf8) else { throw bad }
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = Int64(parts[0]), ms >= 0, SortableID.isValid(String(parts[1])) else { throw bad }
        return (ms, String(parts[1]))
    }
}
