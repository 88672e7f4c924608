import Foundation
import MediscopeEncoding
import MediscopeFirestore
import MediscopeStore

/// `ReportStore` in Firestore: `reportVersions/{analysisId}-{number, 4 digits}`, one document per
/// version with the version's fields (`createdAt` a timestamp). A version is created with
/// `exists: false`, so two hosts writing the same number cannot both succeed (the second gets
/// `.conflict`). Queries: `analysisId` equal, ordered by `number` (composite index in
/// deploy/firestore.indexes.json).
public final class FirestoreReportStore: ReportStore {
    public static let collection = "reportVersions"
    let client: FirestoreClient

    public init(client: FirestoreClient) { self.client = client }

    func name(_ analysisId: String, _ number: Int) -> String {
        client.name(Self.collection, analysisId + "-" + String(format: "%04d", number))
    }

    public func append(_ v: ReportVersion) throws(StoreError) {
        guard v.number >= 1, v.number <= 9999 else { throw StoreError(.invalidRecord, "report version \(v.number) is out of range") }
        do {
            if v.number > 1, try client.get(name(v.analysisId, v.number - 1)) == nil {
                throw StoreError(.invalidRecord, "report version \(v.number) would leave a gap")
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

    public func versions(analysisId: String, organizationId: String) throws(StoreError) -> [ReportVersion] {
        let docs: [FirestoreDocument]
        do {
            docs = try client.runQuery(FirestoreQuery(collectionId: Self.collection, equal: [("analysisId", .string(analysisId))],
                                                      orderBy: [("number", false)]))
        } catch { throw FirestoreAnalysisStore.storeError(error) }
        var versions: [ReportVersion] = []
        for doc in docs where doc.fields["organizationId"] == .string(organizationId) {
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

    public func deleteAll(analysisId: String, organizationId: String) throws(StoreError) {
        let existing = try versions(analysisId: analysisId, organizationId: organizationId)
        guard !existing.isEmpty else { return }
        do { try client.commit(existing.map { .delete(name: name(analysisId, $0.number), precondition: nil) }) } catch {
            throw FirestoreAnalysisStore.storeError(error)
        }
    }
}
