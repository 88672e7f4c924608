import Foundation
import MediscopeFirestoreStore
import MediscopeStore

/// `AnalysisStore` for a host that writes through its outbox to Firestore and reads Firestore with its
/// own waiting writes laid over it.
///
/// - `create` and `delete` return once the write is durable in the local outbox (not yet in Firestore):
///   an upload never waits for, or fails with, the network. `OutboxDelivery` sends them in order.
/// - `get`, `list` and `imageBytes` read Firestore, then apply what still waits here: records created
///   here are visible at once on this host (other hosts see them when delivered), records deleted here
///   are hidden at once. `list` merges both in the contract's order, so paging stays exact.
/// - `checkReady` checks the outbox only: uploads work while Firestore is down (the status page and
///   /api/ready report the outage from `Outbox.stats`).
package final class OutboxAnalysisStore: AnalysisStore {
    package let outbox: Outbox
    package let remote: FirestoreAnalysisStore

    package init(outbox: Outbox, remote: FirestoreAnalysisStore) {
        self.outbox = outbox
        self.remote = remote
    }

    package func create(_ analysis: NewAnalysis) throws(StoreError) -> AnalysisRecord {
        // Firestore's limits are checked now, so an upload it would refuse gets its 4xx, not a parked entry.
        let images = try FirestoreAnalysisStore.validatedImages(analysis)
        let record = analysis.newRecord()
        // An id derived from an Idempotency-Key, taken already, here or in Firestore. Firestore out of
        // reach cannot tell: the upload is taken, and should another host's copy of the same request be
        // there already, delivery finds it (`OutboxDelivery.sameRecordStored`).
        if analysis.idempotency != nil {
            var taken = false
            switch try outbox.recordState(id: record.id) {
            case .created: taken = true
            case .deleted: taken = false
            case .absent:
                do { taken = try remote.owner(id: record.id) != nil } catch {
                    guard error.kind == .unavailable else { throw error }
                }
            }
            if taken { throw StoreError(.conflict, "a record with the id of this Idempotency-Key exists") }
        }
        try outbox.enqueueCreate(record, images: images)
        return record
    }

    package func get(id: String, organizationId: String) throws(StoreError) -> AnalysisRecord? {
        switch try outbox.recordState(id: id) {
        case .deleted: return nil
        case .created(let record): return record.organizationId == organizationId ? record : nil
        case .absent: return try remote.get(id: id, organizationId: organizationId)
        }
    }

    package func list(_ query: AnalysisQuery) throws(StoreError) -> AnalysisPage {
        let limit = min(max(query.limit, 1), 100)
        let after = try query.cursor.map { cursor throws(StoreError) in try AnalysisCursor.decode(cursor) }
        let local = try outbox.pendingRecords(organizationId: query.organizationId, patientId: query.patientId)
        let localIds = Set(local.records.map(\.id))

        // limit + 1 candidates from Firestore that nothing here hides or replaces, or all there are.
        var remoteItems: [AnalysisRecord] = []
        var cursor = query.cursor
        repeat {
            let page = try remote.list(AnalysisQuery(organizationId: query.organizationId, patientId: query.patientId,
                                                     limit: limit + 1, cursor: cursor))
            remoteItems += page.items.filter { !local.deleted.contains($0.id) && !localIds.contains($0.id) }
            cursor = page.nextCursor
        } while cursor != nil && remoteItems.count <= limit

        let older = local.records.filter { record in
            guard let (ms, id) = after else { return true }
            return Self.sortKey(record) < (ms, id)
        }
        let merged = (remoteItems + older).sorted { Self.sortKey($0) > Self.sortKey($1) }
        let items = Array(merged.prefix(limit))
        let next = merged.count > limit ? items.last.map { AnalysisCursor.encode(ms: $0.createdAt.millisecondsSince1970, id: $0.id) } : nil
        return AnalysisPage(items: items, nextCursor: next)
    }

    package func delete(id: String, organizationId: String) throws(StoreError) -> Bool {
        guard try get(id: id, organizationId: organizationId) != nil else { return false }
        // Checked again under the outbox's write lock: of two deletes racing, one wins.
        return try outbox.enqueueDelete(id: id, organizationId: organizationId)
    }

    package func owner(id: String) throws(StoreError) -> String? {
        switch try outbox.recordState(id: id) {
        case .deleted: return nil
        case .created(let record): return record.organizationId
        case .absent: return try remote.owner(id: id)
        }
    }

    package func imagePath(key: String) -> String? { nil }

    package func imageBytes(key: String) throws(StoreError) -> [UInt8]? {
        if let bytes = try outbox.imageBytes(key: key) { return bytes }
        return try remote.imageBytes(key: key)
    }

    /// Straight to Firestore (an image set is idempotent, needing no order): when it is down, the
    /// heatmap is drawn again on its next look.
    package func keepDrawn(_ ref: ImageRef, bytes: [UInt8]) throws(StoreError) { try remote.keepDrawn(ref, bytes: bytes) }

    package func checkReady() throws(StoreError) { try outbox.checkReady() }

    /// The contract's order: `createdAt` (ms), then id.
    static func sortKey(_ record: AnalysisRecord) -> (Int64, String) { (record.createdAt.millisecondsSince1970, record.id) }
}
