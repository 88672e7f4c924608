import Foundation
import GRDB
import MediscopeAuth
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

/// The local, durable outbox: a SQLite file (WAL, synchronous=FULL, so an enqueue is on disk before it
/// returns) of writes bound for the shared store, in order, with the images they carry.
///
/// Many worker processes enqueue; one delivery process (`OutboxDelivery`) sends entries in `seq` order
/// and removes them once the shared store has them. Reads on this host overlay what still waits here,
/// so a record is readable from the moment its upload returned 201.
///
/// Layout: `outbox.sqlite` under `directory` with tables `entries`, `entry_images`, `images` (bytes of
/// images that pending creates carry), `counters` (deliveries, retries, parked) and `remote` (the last
/// known reachability of the shared store).
///
/// This file opens the outbox and enqueues; `+Schema` holds its tables, `+LocalReads` overlays it on
/// reads, `+Delivery` is the delivery process's side of the queue, `+Coding` turns rows and bodies back
/// into values.
package final class Outbox: Sendable {
    package static let fileName = "outbox.sqlite"
    let file: SQLiteStoreFile<StoreError>

    /// Opens (creating and migrating when needed) `directory/outbox.sqlite`.
    /// - Throws: `StoreError` `.io` or `.unavailable` when the file cannot be opened.
    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "outbox", label: "mediscope.outbox",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

    // MARK: - Enqueue (workers)

    /// Makes the creation of `record` with `images` (validated, each distinct) durable here.
    package func enqueueCreate(_ record: AnalysisRecord, images: [ImageBlob]) throws(StoreError) {
        let body: [UInt8]
        do { body = Array(try JSONEncoder.outbox.encode(record)) } catch {
            throw StoreError(.invalidRecord, "the analysis cannot be encoded")
        }
        try file.writeImmediate("enqueue analysis") { db in
            let seq = try Self.insert(db, .analysisCreate, key: record.id, organizationId: record.organizationId,
                                      patientId: record.patient.patientId, createdAt: record.createdAt.millisecondsSince1970, body: body)
            for blob in images {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO images (key, content_type, width, height, bytes) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [blob.ref.key, blob.ref.contentType, blob.ref.width, blob.ref.height, Data(blob.bytes)])
                try db.execute(sql: "INSERT OR IGNORE INTO entry_images (seq, key) VALUES (?, ?)", arguments: [seq, blob.ref.key])
            }
        }
    }

    /// Makes the deletion of analysis `id` of `organizationId` durable here. False when a delete of it
    /// waits already (two requests racing: only the first deletes).
    @discardableResult
    package func enqueueDelete(id: String, organizationId: String) throws(StoreError) -> Bool {
        try file.writeImmediate("enqueue delete") { db in
            let waiting = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM entries d WHERE d.key = ? AND d.kind = ?
                AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.key = d.key AND c.kind = ? AND c.seq > d.seq)
                """, arguments: [id, OutboxEntry.Kind.analysisDelete.rawValue, OutboxEntry.Kind.analysisCreate.rawValue]) ?? false
            if waiting { return false }
            _ = try Self.insert(db, .analysisDelete, key: id, organizationId: organizationId, patientId: nil, createdAt: nil, body: [])
            return true
        }
    }

    /// Makes the audit entry (its `id` set) durable here.
    package func enqueueAudit(_ entry: AuditEntry) throws(StoreError) {
        guard let id = entry.id else { throw StoreError(.invalidRecord, "an audit entry needs its id before it is enqueued") }
        let body: [UInt8]
        do { body = Array(try JSONEncoder.outbox.encode(entry)) } catch {
            throw StoreError(.invalidRecord, "the audit entry cannot be encoded")
        }
        try file.writeImmediate("enqueue audit entry") { db in
            _ = try Self.insert(db, .auditAppend, key: String(id), organizationId: entry.organizationId, patientId: nil,
                                createdAt: entry.time.millisecondsSince1970, body: body)
        }
    }

    private static func insert(_ db: Database, _ kind: OutboxEntry.Kind, key: String, organizationId: String?, patientId: String?,
                               createdAt: Int64?, body: [UInt8]) throws -> Int64 {
        try db.execute(sql: """
            INSERT INTO entries (kind, key, organization_id, patient_id, created_at, enqueued_at, body)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [kind.rawValue, key, organizationId, patientId, createdAt, Date().millisecondsSince1970, Data(body)])
        return db.lastInsertedRowID
    }
}
