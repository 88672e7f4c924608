import Foundation
import GRDB
import MediscopeAuth
import MediscopeStore

// What a worker reads from the outbox to lay this host's waiting writes over the shared store's answers.
extension Outbox {
    /// How analysis `id` stands here (parked creates count as created: their data is kept and shown).
    package func recordState(id: String) throws(StoreError) -> OutboxRecordState {
        let row = try file.read("read outbox") { db in
            try Row.fetchOne(db, sql: """
                SELECT kind, body FROM entries WHERE key = ? AND kind IN (?, ?) ORDER BY seq DESC LIMIT 1
                """, arguments: [id, OutboxEntry.Kind.analysisCreate.rawValue, OutboxEntry.Kind.analysisDelete.rawValue])
        }
        guard let row else { return .absent }
        guard row["kind"] as String == OutboxEntry.Kind.analysisCreate.rawValue else { return .deleted }
        return .created(try Self.decodeRecord(row["body"]))
    }

    /// The organisation's records created here and not deleted here (optionally of one patient, exact
    /// match), and the ids of every record with a waiting delete (hidden whatever the shared store says).
    package func pendingRecords(organizationId: String, patientId: String?) throws(StoreError) -> (records: [AnalysisRecord], deleted: Set<String>) {
        let create = OutboxEntry.Kind.analysisCreate.rawValue, delete = OutboxEntry.Kind.analysisDelete.rawValue
        let (bodies, deleted) = try file.read("read outbox") { db in
            // The newest entry per id decides; a create shows only when no delete came after it.
            let bodies = try Data.fetchAll(db, sql: """
                SELECT body FROM entries e WHERE kind = ? AND organization_id = ? AND (? IS NULL OR patient_id = ?)
                AND NOT EXISTS (SELECT 1 FROM entries d WHERE d.key = e.key AND d.kind = ? AND d.seq > e.seq)
                """, arguments: [create, organizationId, patientId, patientId, delete])
            let deleted = try String.fetchAll(db, sql: "SELECT key FROM entries WHERE kind = ? AND organization_id = ?",
                                              arguments: [delete, organizationId])
            return (bodies, deleted)
        }
        var records: [AnalysisRecord] = []
        for body in bodies { records.append(try Self.decodeRecord(body)) }
        return (records, Set(deleted))
    }

    /// The bytes of an image a create here carries; nil when none does.
    package func imageBytes(key: String) throws(StoreError) -> [UInt8]? {
        try file.read("read outbox image") { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM images WHERE key = ?", arguments: [key]).map { Array($0) }
        }
    }

    /// Audit entries waiting here (parked ones included), of one organisation when given, by id.
    package func pendingAudit(organizationId: String?) throws(StoreError) -> [AuditEntry] {
        let bodies = try file.read("read outbox") { db in
            try Data.fetchAll(db, sql: """
                SELECT body FROM entries WHERE kind = ? AND (? IS NULL OR organization_id = ?) ORDER BY seq
                """, arguments: [OutboxEntry.Kind.auditAppend.rawValue, organizationId, organizationId])
        }
        var entries: [AuditEntry] = []
        for body in bodies {
            do { entries.append(try JSONDecoder.outbox.decode(AuditEntry.self, from: body)) } catch {
                throw StoreError(.io, "an audit entry in the outbox is unreadable")
            }
        }
        return entries
    }
}
