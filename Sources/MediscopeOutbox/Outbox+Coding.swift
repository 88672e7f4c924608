import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

// Rows and bodies back into values: shared by the local reads and the delivery.
extension Outbox {
    /// The entry a row of `entries` holds.
    static func entry(_ row: Row) throws -> OutboxEntry {
        guard let kind = OutboxEntry.Kind(rawValue: row["kind"]) else {
            throw SQLiteFailure(.unavailable, "the outbox holds an entry of unknown kind")
        }
        return OutboxEntry(
            seq: row["seq"], kind: kind, key: row["key"], organizationId: row["organization_id"],
            enqueuedAt: Date(millisecondsSince1970: row["enqueued_at"]), body: Array(row["body"] as Data),
            attempts: row["attempts"], nextAttemptAt: Date(millisecondsSince1970: row["next_attempt_at"]),
            lastError: row["last_error"], parkedAt: (row["parked_at"] as Int64?).map(Date.init(millisecondsSince1970:)))
    }

    /// The analysis record a create's body holds.
    static func decodeRecord(_ body: Data) throws(StoreError) -> AnalysisRecord {
        do { return try JSONDecoder.outbox.decode(AnalysisRecord.self, from: body) } catch {
            throw StoreError(.io, "an analysis in the outbox is unreadable")
        }
    }
}

extension JSONEncoder {
    /// Dates as milliseconds since the epoch, so a record read back from the outbox equals the one written.
    static var outbox: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }
}

extension JSONDecoder {
    /// Reads what `JSONEncoder.outbox` wrote.
    static var outbox: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }
}
