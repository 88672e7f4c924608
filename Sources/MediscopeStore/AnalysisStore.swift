import Foundation
import MediscopeImaging

// The contract every store (embedded SQLite now, Google Firestore next) fulfils.
// Records are plain values owned by this module: the store knows nothing of models or HTTP.

/// Patient details entered with the upload. Health data: never logged, never sent to an LLM.
package struct PatientInfo: Codable, Sendable, Equatable {
    package var patientId: String
    package var name: String?
    package var age: Int?
    package var sex: String?        // female | male | other | unknown
    package var modality: String?   // MRI | CT
    package var bodyPart: String?
    package var note: String?

    package init(patientId: String, name: String? = nil, age: Int? = nil, sex: String? = nil,
                modality: String? = nil, bodyPart: String? = nil, note: String? = nil) {
        self.patientId = patientId; self.name = name; self.age = age; self.sex = sex
        self.modality = modality; self.bodyPart = bodyPart; self.note = note
    }
}

/// A stored image, addressed by the SHA-256 of its bytes; or a heatmap drawn when first looked at,
/// addressed by the SHA-256 of what it is drawn from (`drawing`).
package struct ImageRef: Codable, Sendable, Equatable {
    package var key: String          // lowercase hex SHA-256 of the bytes (of `drawing.digestInput` for a drawn one)
    package var contentType: String  // image/jpeg | image/webp | image/png
    package var width: Int
    package var height: Int
    /// nil for a heatmap drawn when first looked at: its size is not known when the record is stored.
    package var byteCount: Int?
    /// What the heatmap is drawn from when first looked at (records since issue 23); nil: the bytes were
    /// stored with the record.
    package var drawing: HeatmapDrawing?

    package init(key: String, contentType: String, width: Int, height: Int, byteCount: Int?, drawing: HeatmapDrawing? = nil) {
        self.key = key; self.contentType = contentType; self.width = width; self.height = height; self.byteCount = byteCount
        self.drawing = drawing
    }

    /// The image's format, nil when the stored media type is none Mediscope writes.
    package var format: ImageFormat? { ImageFormat(contentType: contentType) }
}

package struct StoredProbability: Codable, Sendable, Equatable {
    package var label: String
    /// The label as people read it (from the manifest when the analysis ran); nil in older records.
    package var title: String?
    package var probability: Double
    package init(label: String, title: String? = nil, probability: Double) {
        self.label = label; self.title = title; self.probability = probability
    }
}

/// One model result: classification plus its Grad-CAM overlay, the overlay as `Heatmap` says: an
/// `ImageRef` as stored (`StoredResult`), a URL as the API serves it. One shape, so the fields are written
/// once and the served result is the stored one with its heatmap mapped (`mapHeatmap`).
package struct AnalysisResult<Heatmap: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    package var id: String
    package var model: String
    package var title: String
    package var task: String                 // binary | multiclass
    package var probabilities: [StoredProbability]
    package var prediction: String
    package var confidence: Double
    package var explainedLabel: String
    package var heatmap: Heatmap

    package init(id: String, model: String, title: String, task: String, probabilities: [StoredProbability],
                prediction: String, confidence: Double, explainedLabel: String, heatmap: Heatmap) {
        self.id = id; self.model = model; self.title = title; self.task = task; self.probabilities = probabilities
        self.prediction = prediction; self.confidence = confidence; self.explainedLabel = explainedLabel; self.heatmap = heatmap
    }

    /// The same result with its heatmap as `transform` makes it.
    package func mapHeatmap<Other>(_ transform: (Heatmap) -> Other) -> AnalysisResult<Other> {
        AnalysisResult<Other>(id: id, model: model, title: title, task: task, probabilities: probabilities, prediction: prediction,
                              confidence: confidence, explainedLabel: explainedLabel, heatmap: transform(heatmap))
    }
}

/// One model result as stored: its heatmap is an image of the record.
package typealias StoredResult = AnalysisResult<ImageRef>

/// What was analysed: the uploaded file's format, and what was done to it so that the analysis ran on
/// what the clinician saw. Stored with the analysis; nil in records made before it was kept.
package struct ScanSource: Codable, Sendable, Equatable {
    /// `jpeg`, `png`, `webp` or `dicom`.
    package var format: String
    /// The EXIF Orientation (1...8) the file carried, applied before analysis and display; nil: none.
    package var exifOrientation: Int?
    /// How the orientation changed the stored pixels, in words ("rotated 90° clockwise"); nil: none.
    package var orientationApplied: String?
    /// For a DICOM file: the frame, Modality LUT and window that made the analysed 8-bit image.
    package var dicom: DicomWindow?
    /// For a DICOM file: its study identifiers (patient data: same access rules as the record, never logged).
    package var study: DicomStudy?

    package init(format: String, exifOrientation: Int? = nil, orientationApplied: String? = nil,
                dicom: DicomWindow? = nil, study: DicomStudy? = nil) {
        self.format = format; self.exifOrientation = exifOrientation; self.orientationApplied = orientationApplied
        self.dicom = dicom; self.study = study
    }
}

/// How a DICOM frame was rendered to the 8-bit image analysed and shown (PS3.3 C.11): MediscopeImaging's
/// `DicomRendering`, stored as it is (same JSON).
package typealias DicomWindow = DicomRendering

/// The study a DICOM file belongs to, as the file says: UIDs, Study Date (YYYYMMDD) and Series Description.
package struct DicomStudy: Codable, Sendable, Equatable {
    package var studyInstanceUID: String?
    package var seriesInstanceUID: String?
    package var sopInstanceUID: String?
    package var studyDate: String?
    package var seriesDescription: String?

    package init(studyInstanceUID: String? = nil, seriesInstanceUID: String? = nil, sopInstanceUID: String? = nil,
                studyDate: String? = nil, seriesDescription: String? = nil) {
        self.studyInstanceUID = studyInstanceUID; self.seriesInstanceUID = seriesInstanceUID
        self.sopInstanceUID = sopInstanceUID; self.studyDate = studyDate; self.seriesDescription = seriesDescription
    }
}

/// A create made under an Idempotency-Key: the record's id derives from the key (the same on every host,
/// so two hosts that both ran a retried request make one record), and the request's fingerprint is kept
/// with the record, so a later request under the key is told apart from the one that made it.
package struct IdempotentCreate: Sendable, Equatable {
    /// The record's id (`SortableID.derived`): valid like any, but not time-ordered.
    package var id: String
    /// The 64-hex-digit fingerprint of the request that made the record.
    package var fingerprint: String
    package init(id: String, fingerprint: String) { self.id = id; self.fingerprint = fingerprint }
}

/// What the server hands the store to create one analysis; the store assigns id and time.
package struct NewAnalysis: Sendable {
    package var organizationId: String
    package var createdBy: String?
    package var patient: PatientInfo
    package var imageWidth: Int
    package var imageHeight: Int
    /// The scan at display size and one heatmap per result; refs in `results` point into `images` by key.
    package var scan: ImageRef
    package var results: [StoredResult]
    package var timingsMs: [String: Double]
    package var images: [ImageBlob]
    package var source: ScanSource?
    /// Whether the image is one the models were made for; never changes `results`.
    package var inputCheck: InputCheck
    /// Set for a create under an Idempotency-Key: the record's id and the request's fingerprint.
    package var idempotency: IdempotentCreate?

    package init(organizationId: String, createdBy: String?, patient: PatientInfo, imageWidth: Int, imageHeight: Int,
                scan: ImageRef, results: [StoredResult], timingsMs: [String: Double], images: [ImageBlob],
                source: ScanSource? = nil, inputCheck: InputCheck = .notRecorded, idempotency: IdempotentCreate? = nil) {
        self.organizationId = organizationId; self.createdBy = createdBy; self.patient = patient
        self.imageWidth = imageWidth; self.imageHeight = imageHeight; self.scan = scan; self.results = results
        self.timingsMs = timingsMs; self.images = images; self.source = source; self.inputCheck = inputCheck
        self.idempotency = idempotency
    }
}

/// Image bytes to store; `ref.key` must be the SHA-256 of `bytes` (ImageBlob.make computes it).
package struct ImageBlob: Sendable {
    package var ref: ImageRef { didSet { keyIsDigest = false } }
    package var bytes: [UInt8] { didSet { keyIsDigest = false } }
    /// True only for a blob from `make` that was not changed since: its key is known to be the
    /// digest of its bytes, so a store need not hash the bytes a second time. Anything else is checked.
    var keyIsDigest = false
    package init(ref: ImageRef, bytes: [UInt8]) { self.ref = ref; self.bytes = bytes }
}

package struct AnalysisRecord: Codable, Sendable, Equatable {
    package var id: String                   // 26 chars, time-ordered (ULID-style Crockford base32)
    package var createdAt: Date
    package var organizationId: String
    package var createdBy: String?
    package var patient: PatientInfo
    package var imageWidth: Int
    package var imageHeight: Int
    package var scan: ImageRef
    package var results: [StoredResult]
    package var timingsMs: [String: Double]
    /// Plain-language report text, when one has been written (LLM issue, later).
    package var report: String?
    package var source: ScanSource? = nil
    /// Whether the image is one the models were made for; `InputCheck.notRecorded` for records stored
    /// before the check existed.
    package var inputCheck: InputCheck = .notRecorded
    /// The fingerprint of the request that made the record under an Idempotency-Key (its id then derives
    /// from the key); nil for a record made without one.
    package var idempotencyFingerprint: String? = nil

    /// A record as a store read it back (stores assign `id` and `createdAt`).
    package init(id: String, createdAt: Date, organizationId: String, createdBy: String?, patient: PatientInfo,
                imageWidth: Int, imageHeight: Int, scan: ImageRef, results: [StoredResult], timingsMs: [String: Double],
                report: String?, source: ScanSource? = nil, inputCheck: InputCheck = .notRecorded,
                idempotencyFingerprint: String? = nil) {
        self.id = id; self.createdAt = createdAt; self.organizationId = organizationId; self.createdBy = createdBy
        self.patient = patient; self.imageWidth = imageWidth; self.imageHeight = imageHeight; self.scan = scan
        self.results = results; self.timingsMs = timingsMs; self.report = report; self.source = source
        self.inputCheck = inputCheck; self.idempotencyFingerprint = idempotencyFingerprint
    }
}

extension AnalysisRecord {
    /// Decodes a record, reading a missing `inputCheck` (an outbox entry queued before input checks) as
    /// `InputCheck.notRecorded`.
    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), createdAt: try c.decode(Date.self, forKey: .createdAt),
            organizationId: try c.decode(String.self, forKey: .organizationId),
            createdBy: try c.decodeIfPresent(String.self, forKey: .createdBy),
            patient: try c.decode(PatientInfo.self, forKey: .patient),
            imageWidth: try c.decode(Int.self, forKey: .imageWidth), imageHeight: try c.decode(Int.self, forKey: .imageHeight),
            scan: try c.decode(ImageRef.self, forKey: .scan), results: try c.decode([StoredResult].self, forKey: .results),
            timingsMs: try c.decode([String: Double].self, forKey: .timingsMs),
            report: try c.decodeIfPresent(String.self, forKey: .report),
            source: try c.decodeIfPresent(ScanSource.self, forKey: .source),
            inputCheck: try c.decodeIfPresent(InputCheck.self, forKey: .inputCheck) ?? .notRecorded,
            idempotencyFingerprint: try c.decodeIfPresent(String.self, forKey: .idempotencyFingerprint))
    }
}

package struct AnalysisQuery: Sendable, Equatable {
    package var organizationId: String
    package var patientId: String?           // exact match
    package var limit: Int                   // 1...100
    package var cursor: String?              // opaque, from AnalysisPage.nextCursor
    package init(organizationId: String, patientId: String? = nil, limit: Int = 20, cursor: String? = nil) {
        self.organizationId = organizationId; self.patientId = patientId; self.limit = limit; self.cursor = cursor
    }
}

package struct AnalysisPage: Sendable, Equatable {
    package var items: [AnalysisRecord]      // newest first
    package var nextCursor: String?          // nil on the last page
    package init(items: [AnalysisRecord], nextCursor: String?) { self.items = items; self.nextCursor = nextCursor }
}

package struct StoreError: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable { case unavailable, invalidCursor, invalidRecord, io, conflict }
    package let kind: Kind
    package let message: String
    package init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    package var description: String { "\(kind): \(message)" }
}

/// Analyses and their images: the store every backend (embedded SQLite, Google Firestore) implements.
///
/// The contract, which Tests/MediscopeStoreTests/AnalysisStoreContractTests.swift checks for every
/// backend:
/// - **Ids and time.** `create` assigns the id (26-character, time-ordered ULID in Crockford base32)
///   and `createdAt` (millisecond precision); ids of one store never repeat. A create under an
///   Idempotency-Key (`NewAnalysis.idempotency`) takes the id given, derived from the key: a record
///   with that id already is `StoreError.conflict`, and nothing is stored.
/// - **Durability and atomicity.** `create` returns only when the record and every image are durable;
///   a crash or an error at any point leaves the whole record or nothing visible (images without a
///   record may remain and are collected later, never shown).
/// - **Validation.** Every check (organisation and patient id present, positive size, image keys of 64
///   lowercase hex chars that are the SHA-256 of their bytes, supported content types, scan and
///   heatmaps among the images, JSON-encodable values) runs before anything is written:
///   `StoreError.invalidRecord`, and nothing stored.
/// - **Organisations.** A record is visible only to its organisation: `get`, `list` and `delete` with
///   another organisation's id behave as if it did not exist. `owner` names a record's organisation
///   (for the audit trail) and nothing else.
/// - **Listing.** Newest first (`createdAt`, then id, both descending), at most `limit` (clamped to
///   1...100), `patientId` an exact match on the stored (NFC) bytes, `nextCursor` opaque and nil on the
///   last page; paging with it never repeats or skips a record, even while records are added. A cursor
///   the store did not issue is `StoreError.invalidCursor`.
/// - **Images.** Content-addressed by SHA-256: records may share an image; `delete` removes the record
///   and only the images no other record uses. `imageBytes` returns nil for an unknown or malformed
///   key, never touching anything outside the store. A heatmap with a `drawing` is not among the
///   images: its drawing's lossless scan is; `keepDrawn` keeps it once drawn, and `delete` removes it
///   with the last record that uses it.
/// - **Errors.** `unavailable` (the backend cannot be reached now; retry later), `io` (a read or write
///   failed, or stored data is unreadable), `invalidRecord`, `invalidCursor`. Messages never quote
///   patient data.
package protocol AnalysisStore: Sendable {
    /// Stores images and record; returns only once both are durable (fsync'd / committed).
    /// A crash at any point leaves either the whole record or nothing visible.
    func create(_ analysis: NewAnalysis) throws(StoreError) -> AnalysisRecord
    /// nil when absent or belonging to another organisation.
    func get(id: String, organizationId: String) throws(StoreError) -> AnalysisRecord?
    /// One page of the organisation's records, newest first.
    func list(_ query: AnalysisQuery) throws(StoreError) -> AnalysisPage
    /// Removes the record and every image no other record uses. false when absent.
    func delete(id: String, organizationId: String) throws(StoreError) -> Bool
    /// The organisation record `id` belongs to, whoever asks; nil when there is no such record. Only for
    /// filing a refused attempt on another organisation's record in that organisation's audit trail too:
    /// it reveals nothing to the caller and never returns the record.
    func owner(id: String) throws(StoreError) -> String?
    /// Where an image's bytes live on local disk (for nginx X-Accel-Redirect), if they do; nil for a
    /// backend that keeps images elsewhere (the app then serves `imageBytes`). A drawn heatmap's once kept.
    func imagePath(key: String) -> String?
    /// The bytes of the image with SHA-256 `key` (a drawn heatmap's once kept); nil when there is none or
    /// the key is malformed.
    func imageBytes(key: String) throws(StoreError) -> [UInt8]?
    /// Keeps the bytes of a heatmap drawn from `ref.drawing` under `ref.key`, so that `imagePath` and
    /// `imageBytes` find them from now on; a cache of what the drawing gives, never checked against a
    /// digest of the bytes. Several processes may keep the same heatmap at once (temp file + rename, or
    /// an idempotent set); a kept heatmap goes with the last record that uses it.
    func keepDrawn(_ ref: ImageRef, bytes: [UInt8]) throws(StoreError)
    /// Cheap readiness check: the backend answers and images can be written.
    func checkReady() throws(StoreError)
}
