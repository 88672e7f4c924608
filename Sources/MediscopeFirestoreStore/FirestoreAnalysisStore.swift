import Foundation
import MediscopeEncoding
import MediscopeImaging
import MediscopeFirestore
import MediscopeSQLite
import MediscopeStore

/// `AnalysisStore` in Google Cloud Firestore, for several application hosts sharing one database.
///
/// Data model (docs/firestore.md):
/// - `analyses/{id}`: one document per analysis with the API's fields (`organizationId`, `createdBy`,
///   `patientId`, `patient`, `imageWidth`, `imageHeight`, `scan`, `results`, `timingsMs`, `report`,
///   `source`, `inputCheck`), `createdAt` as a timestamp, `imageKeys` (the images it uses) and, for a
///   record made under an Idempotency-Key, `idempotencyFingerprint`.
/// - `images/{sha256}`: one content-addressed document per display-size image (`bytes`, `contentType`,
///   `width`, `height`, `byteCount`); each must stay under Firestore's 1 MiB document limit.
///
/// A create is one atomic commit: the images (set, idempotent by content) and the record with an
/// `exists: false` precondition on its id. Queries need the composite indexes in
/// deploy/firestore.indexes.json. Images are not on local disk: `imagePath` is nil and the app serves
/// `imageBytes`.
package final class FirestoreAnalysisStore: AnalysisStore {
    package static let analyses = "analyses"
    package static let images = "images"
    /// Largest image document accepted: Firestore refuses documents over 1 MiB (1,048,576 bytes) in
    /// total; base64 is not counted (bytes are stored raw), the other fields are small.
    package static let maxImageBytes = 1_000_000

    let client: FirestoreClient

    package init(client: FirestoreClient) { self.client = client }

    package func create(_ analysis: NewAnalysis) throws(StoreError) -> AnalysisRecord {
        let images = try Self.validatedImages(analysis)
        let record = analysis.newRecord()
        do { try insert(record, images: images) } catch {
            if analysis.idempotency != nil, error.status == .alreadyExists {
                throw StoreError(.conflict, "a record with the id of this Idempotency-Key exists")
            }
            throw Self.storeError(error)
        }
        return record
    }

    /// The contract's checks (`NewAnalysis.validatedImages`) plus Firestore's own: every image document
    /// must fit under the 1 MiB limit. Throws `invalidRecord`.
    package static func validatedImages(_ analysis: NewAnalysis) throws(StoreError) -> [ImageBlob] {
        let images = try analysis.validatedImages().map(\.0)
        for blob in images where blob.bytes.count > maxImageBytes {
            throw StoreError(.invalidRecord, "image \(blob.ref.key) is \(blob.bytes.count) bytes, over Firestore's 1 MiB document limit")
        }
        return images
    }

    /// Writes `record` (id and time already given) and its images in one atomic commit, with an
    /// `exists: false` precondition on the record: ALREADY_EXISTS when a record has this id. The images
    /// are set unconditionally (content-addressed: the same key always holds the same bytes). `images`
    /// are validated already (`validatedImages`). The outbox's delivery calls this directly.
    package func insert(_ record: AnalysisRecord, images: [ImageBlob]) throws(FirestoreError) {
        var writes: [FirestoreWrite] = images.map { blob in .set(imageDocument(blob.ref, bytes: blob.bytes)) }
        // A heatmap drawn when first looked at is kept as an image later (`keepDrawn`): listed now, it
        // goes with the last record that uses it like any image.
        let keys = images.map(\.ref.key) + record.results.drawnHeatmapKeys
        let doc: FirestoreDocument
        do { doc = try document(record, imageKeys: keys) } catch {
            throw FirestoreError(.invalidArgument, error.message)
        }
        writes.append(.set(doc, precondition: .exists(false)))
        try client.commit(writes)
    }

    /// The `images/{key}` document of an image.
    func imageDocument(_ ref: ImageRef, bytes: [UInt8]) -> FirestoreDocument {
        FirestoreDocument(name: client.name(Self.images, ref.key), fields: [
            "bytes": .bytes(bytes), "contentType": .string(ref.contentType), "width": .integer(Int64(ref.width)),
            "height": .integer(Int64(ref.height)), "byteCount": .integer(Int64(bytes.count)),
        ])
    }

    /// As an `images/{key}` document, shared by every host (set: idempotent, the same drawing always
    /// gives the same bytes). A record deleted meanwhile leaves an image no record uses, never shown.
    package func keepDrawn(_ ref: ImageRef, bytes: [UInt8]) throws(StoreError) {
        guard ref.drawing != nil, !bytes.isEmpty, bytes.count <= Self.maxImageBytes else {
            throw StoreError(.invalidRecord, "only a drawn heatmap's bytes (under 1 MiB) are kept this way")
        }
        do { try client.commit([.set(imageDocument(ref, bytes: bytes))]) } catch { throw Self.storeError(error) }
    }

    package func get(id: String, organizationId: String) throws(StoreError) -> AnalysisRecord? {
        guard SortableID.isValid(id) else { return nil }
        let doc: FirestoreDocument?
        do { doc = try client.get(client.name(Self.analyses, id)) } catch { throw Self.storeError(error) }
        guard let doc, doc.fields["organizationId"] == .string(organizationId) else { return nil }
        return try record(doc)
    }

    /// The stored records among `ids`, by id, whatever their organisation (one `batchGet`, images not
    /// read); ids that are not record ids or not stored are absent. For tools that compare many records
    /// at once (`mediscope store migrate`); not on `AnalysisStore`, whose reads are per organisation.
    /// - Throws: `StoreError` as `get` does.
    package func records(ids: [String]) throws(StoreError) -> [String: AnalysisRecord] {
        let names = ids.filter(SortableID.isValid).map { client.name(Self.analyses, $0) }
        let docs: [String: FirestoreDocument]
        do { docs = try client.batchGet(names) } catch { throw Self.storeError(error) }
        var found: [String: AnalysisRecord] = [:]
        for doc in docs.values { found[doc.id] = try record(doc) }
        return found
    }

    package func list(_ query: AnalysisQuery) throws(StoreError) -> AnalysisPage {
        let limit = min(max(query.limit, 1), 100)
        var q = FirestoreQuery(collectionId: Self.analyses, equal: [("organizationId", .string(query.organizationId))],
                               orderBy: [("createdAt", true), ("__name__", true)], limit: limit + 1)
        if let patientId = query.patientId { q.equal.append(("patientId", .string(patientId))) }
        if let cursor = query.cursor {
            let (ms, id) = try AnalysisCursor.decode(cursor)
            q.startAfter = [.timestamp(Date(millisecondsSince1970: ms)), .reference(client.name(Self.analyses, id))]
        }
        let docs: [FirestoreDocument]
        do { docs = try client.runQuery(q) } catch { throw Self.storeError(error) }
        var items: [AnalysisRecord] = []
        for doc in docs.prefix(limit) { items.append(try record(doc)) }
        let next = docs.count > limit ? items.last.map { AnalysisCursor.encode(ms: $0.createdAt.millisecondsSince1970, id: $0.id) } : nil
        return AnalysisPage(items: items, nextCursor: next)
    }

    package func delete(id: String, organizationId: String) throws(StoreError) -> Bool {
        guard try get(id: id, organizationId: organizationId) != nil else { return false }
        let name = client.name(Self.analyses, id)
        let keys: [String]
        do {
            keys = try keysOf(client.get(name))
            try client.commit([.delete(name: name, precondition: .exists(true))])
        } catch {
            if error.status == .notFound { return false }  // deleted meanwhile by another host
            throw Self.storeError(error)
        }
        // Images no other record uses. A create that reuses one commits the image with its record, so a
        // delete that races it can only remove a copy the create has just rewritten: checked again by time.
        for key in Set(keys) {
            do {
                var uses = FirestoreQuery(collectionId: Self.analyses, limit: 1)
                uses.arrayContains = [("imageKeys", .string(key))]
                let users = try client.runQuery(uses)
                guard users.isEmpty, let image = try client.get(client.name(Self.images, key)), let time = image.updateTime else { continue }
                try client.commit([.delete(name: image.name, precondition: .updateTime(time))])
            } catch {
                // Left for the next delete or a collection run: an unused image is never shown.
                continue
            }
        }
        return true
    }

    package func owner(id: String) throws(StoreError) -> String? {
        guard SortableID.isValid(id) else { return nil }
        let doc: FirestoreDocument?
        do { doc = try client.get(client.name(Self.analyses, id)) } catch { throw Self.storeError(error) }
        guard case .string(let org)? = doc?.fields["organizationId"] else { return nil }
        return org
    }

    package func imagePath(key: String) -> String? { nil }

    package func imageBytes(key: String) throws(StoreError) -> [UInt8]? {
        guard key.utf8.count == 64, key.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        let doc: FirestoreDocument?
        do { doc = try client.get(client.name(Self.images, key)) } catch { throw Self.storeError(error) }
        guard case .bytes(let bytes)? = doc?.fields["bytes"] else { return nil }
        return bytes
    }

    package func checkReady() throws(StoreError) {
        do { _ = try client.get(client.name(Self.analyses, "readiness-probe")) } catch { throw Self.storeError(error) }
    }

    // MARK: - Mapping

    func document(_ r: AnalysisRecord, imageKeys: [String]) throws(StoreError) -> FirestoreDocument {
        var fields: [String: FirestoreValue] = [
            "organizationId": .string(r.organizationId), "patientId": .string(r.patient.patientId),
            "createdAt": .timestamp(r.createdAt), "imageWidth": .integer(Int64(r.imageWidth)),
            "imageHeight": .integer(Int64(r.imageHeight)), "imageKeys": .array(imageKeys.map(FirestoreValue.string)),
        ]
        if let createdBy = r.createdBy { fields["createdBy"] = .string(createdBy) }
        if let report = r.report { fields["report"] = .string(report) }
        if let fingerprint = r.idempotencyFingerprint { fields["idempotencyFingerprint"] = .string(fingerprint) }
        do {
            fields["patient"] = try FirestoreCoding.encode(r.patient)
            fields["scan"] = try FirestoreCoding.encode(r.scan)
            fields["results"] = try FirestoreCoding.encode(r.results)
            fields["timingsMs"] = try FirestoreCoding.encode(r.timingsMs)
            if let source = r.source { fields["source"] = try FirestoreCoding.encode(source) }
            fields["inputCheck"] = try FirestoreCoding.encode(r.inputCheck)
        } catch {
            throw StoreError(.invalidRecord, "the analysis cannot be encoded: \(error)")
        }
        return FirestoreDocument(name: client.name(Self.analyses, r.id), fields: fields)
    }

    func record(_ doc: FirestoreDocument) throws(StoreError) -> AnalysisRecord {
        let f = doc.fields
        func field<T: Decodable>(_ name: String, _ type: T.Type) throws(StoreError) -> T {
            guard let value = f[name] else { throw StoreError(.io, "stored analysis \(doc.id) has no \(name)") }
            do { return try FirestoreCoding.decode(type, from: value) } catch {
                throw StoreError(.io, "stored analysis \(doc.id) has an unreadable \(name)")
            }
        }
        guard case .string(let org)? = f["organizationId"], case .timestamp(let created)? = f["createdAt"] else {
            throw StoreError(.io, "stored analysis \(doc.id) lacks its organisation or time")
        }
        var createdBy: String?
        if case .string(let v)? = f["createdBy"] { createdBy = v }
        var report: String?
        if case .string(let v)? = f["report"] { report = v }
        var fingerprint: String?
        if case .string(let v)? = f["idempotencyFingerprint"] { fingerprint = v }
        return AnalysisRecord(
            id: doc.id, createdAt: created.roundedToMilliseconds, organizationId: org, createdBy: createdBy,
            patient: try field("patient", PatientInfo.self), imageWidth: try field("imageWidth", Int.self),
            imageHeight: try field("imageHeight", Int.self), scan: try field("scan", ImageRef.self),
            results: try field("results", [StoredResult].self), timingsMs: try field("timingsMs", [String: Double].self),
            report: report, source: f["source"] == nil ? nil : try field("source", ScanSource.self),
            inputCheck: f["inputCheck"] == nil ? .notRecorded : try field("inputCheck", InputCheck.self),
            idempotencyFingerprint: fingerprint)
    }

    func keysOf(_ doc: FirestoreDocument?) -> [String] {
        guard case .array(let values)? = doc?.fields["imageKeys"] else { return [] }
        return values.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    static func storeError(_ error: FirestoreError) -> StoreError {
        switch error.status {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .unauthenticated, .internalError:
            StoreError(.unavailable, "Firestore: \(error.status.rawValue)")
        case .invalidArgument, .alreadyExists:
            StoreError(.invalidRecord, "Firestore refused the write: \(error.status.rawValue)")
        case .failedPrecondition, .notFound, .permissionDenied:
            // A missing composite index, a wrong database, missing IAM rights: the deployment's problem,
            // answered 503 and logged, never blamed on the request.
            StoreError(.unavailable, "Firestore: \(error.status.rawValue)")
        default:
            StoreError(.io, "Firestore: \(error.status.rawValue)")
        }
    }
}
