import Foundation
import MediscopeEncoding
import MediscopeFirestore
import MediscopeStore

/// `ReportStore` in Firestore: `reportVersions/{analysisId}-{number, 4 digits}`, one document per
/// version with the version's fields (`createdAt` a timestamp). A version is created with
/// `exists: false`, so two hosts writing the same number cannot both succeed (the second gets
/// `.conflict`). Queries: `analysisId` equal, ordered by `number` (composite index in
/// deploy/firestore.indexes.json).
///
/// `close` writes a marker document (`status` "closed", no text) under the number after the newest
/// version, with `exists: false`: the only append that could come next (that number) finds it taken, and
/// a signature that got there first makes the marker's write fail, so the check for a signed version and
/// the closing are one step. `versions` never shows the marker; `deleteAll` leaves it.
package final class FirestoreReportStore: ReportStore {
    package static let collection = "reportVersions"
    /// `status` of the marker document that closes a report.
    static let closedStatus = "closed"
    let client: FirestoreClient

    package init(client: FirestoreClient) { self.client = client }

    func name(_ analysisId: String, _ number: Int) -> String {
        client.name(Self.collection, analysisId + "-" + String(format: "%04d", number))
    }

    package func append(_ v: ReportVersion) throws(StoreError) {
        guard v.number >= 1, v.number <= 9999 else { throw StoreError(.invalidRecord, "report version \(v.number) is out of range") }
        do {
            if v.number > 1 {
                guard let previous = try client.get(name(v.analysisId, v.number - 1)) else {
                    throw StoreError(.invalidRecord, "report version \(v.number) would leave a gap")
                }
                if previous.fields["status"] == .string(Self.closedStatus) {
                    throw StoreError(.conflict, "the report is closed: its analysis is being deleted")
                }
            }
            var fields: [String: FirestoreValue] = [
                "analysisId": .string(v.analysisId), "organizationId": .string(v.organizationId), "number": .integer(Int64(v.number)),
                "status": .string(v.status.rawValue), "text": .string(v.text), "origin": .string(v.origin.rawValue),
                "createdAt": .timestamp(v.createdAt),
            ]
            for (key, value) in [("model", v.model), ("reason", v.reason), ("authorId", v.authorId), ("authorName", v.authorName)] {
                if let value { fields[key] = .string(value) }
            }
            try client.commit([.set(FirestoreDocument(name: name(v.analysisId, v.number), fields: fields), precondition: .exists(false))])
        } catch let error as StoreError {
            throw error
        } catch let error as FirestoreError {
            if error.status == .alreadyExists { throw StoreError(.conflict, "report version \(v.number) exists already") }
            throw FirestoreAnalysisStore.storeError(error)
        } catch {
            throw StoreError(.io, "report version: \(type(of: error))")
        }
    }

    /// Every document of the analysis's report in `organizationId`, by number: its versions and a marker
    /// that closes it, if there is one.
    func documents(_ analysisId: String, _ organizationId: String) throws(StoreError) -> [FirestoreDocument] {
        let docs: [FirestoreDocument]
        do {
            docs = try client.runQuery(FirestoreQuery(collectionId: Self.collection, equal: [("analysisId", .string(analysisId))],
                                                      orderBy: [("number", false)]))
        } catch { throw FirestoreAnalysisStore.storeError(error) }
        return docs.filter { $0.fields["organizationId"] == .string(organizationId) }
    }

    static func isMarker(_ doc: FirestoreDocument) -> Bool { doc.fields["status"] == .string(closedStatus) }

    package func versions(analysisId: String, organizationId: String) throws(StoreError) -> [ReportVersion] {
        var versions: [ReportVersion] = []
        for doc in try documents(analysisId, organizationId) where !Self.isMarker(doc) {
            let f = doc.fields
            func text(_ key: String) -> String? { if case .string(let s)? = f[key] { s } else { nil } }
            guard case .integer(let number)? = f["number"], case .timestamp(let created)? = f["createdAt"],
                  let status = text("status").flatMap(ReportVersion.Status.init(rawValue:)),
                  let origin = text("origin").flatMap(ReportVersion.Origin.init(rawValue:)), let body = text("text") else {
                throw StoreError(.io, "a stored report version of \(analysisId) is unreadable")
            }
            versions.append(ReportVersion(analysisId: analysisId, organizationId: organizationId, number: Int(number), status: status,
                                          text: body, origin: origin, model: text("model"), reason: text("reason"),
                                          authorId: text("authorId"), authorName: text("authorName"), createdAt: created.roundedToMilliseconds))
        }
        return versions
    }

    package func close(analysisId: String, organizationId: String) throws(StoreError) -> ReportClosing {
        // Each round reads the report and writes the marker after its newest version; a version that
        // lands meanwhile takes that number first, and the next round reads it.
        for _ in 0..<8 {
            let docs = try documents(analysisId, organizationId)
            if docs.contains(where: Self.isMarker) { return .closed }
            if docs.contains(where: { $0.fields["status"] == .string(ReportVersion.Status.signed.rawValue) }) { return .signed }
            let newest = docs.compactMap { doc -> Int64? in if case .integer(let n)? = doc.fields["number"] { n } else { nil } }.max() ?? 0
            let marker = FirestoreDocument(name: name(analysisId, Int(newest) + 1), fields: [
                "analysisId": .string(analysisId), "organizationId": .string(organizationId), "number": .integer(newest + 1),
                "status": .string(Self.closedStatus), "createdAt": .timestamp(Date()),
            ])
            do {
                try client.commit([.set(marker, precondition: .exists(false))])
                return .closed
            } catch {
                if error.status != .alreadyExists { throw FirestoreAnalysisStore.storeError(error) }
            }
        }
        throw StoreError(.unavailable, "the report kept changing while it was closed")
    }

    package func reopen(analysisId: String, organizationId: String) throws(StoreError) {
        let markers = try documents(analysisId, organizationId).filter(Self.isMarker)
        guard !markers.isEmpty else { return }
        do { try client.commit(markers.map { .delete(name: $0.name, precondition: nil) }) } catch {
            throw FirestoreAnalysisStore.storeError(error)
        }
    }

    package func deleteAll(analysisId: String, organizationId: String) throws(StoreError) {
        let existing = try versions(analysisId: analysisId, organizationId: organizationId)
        guard !existing.isEmpty else { return }
        do { try client.commit(existing.map { .delete(name: name(analysisId, $0.number), precondition: nil) }) } catch {
            throw FirestoreAnalysisStore.storeError(error)
        }
    }
}
