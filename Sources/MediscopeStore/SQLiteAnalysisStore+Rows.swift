import Foundation
import GRDB
import MediscopeEncoding
import MediscopeImaging

// A stored row back into an `AnalysisRecord`: JSON columns decoded, an unreadable column named (never its
// contents).
extension SQLiteAnalysisStore {
    /// One JSON column of a row, as `type`.
    private static func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String, _ field: String, _ id: String) throws(StoreError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError(.io, "stored analysis \(id) has an unreadable \(field) column")
        }
    }

    /// The record a row of `analyses` holds (`input_check` NULL in older rows: `InputCheck.notRecorded`).
    static func record(from row: Row) throws(StoreError) -> AnalysisRecord {
        do {
            let id = try row.decode(String.self, forColumn: "id")
            let ms = try row.decode(Int64.self, forColumn: "created_at")
            return AnalysisRecord(
                id: id,
                createdAt: Date(millisecondsSince1970: ms),
                organizationId: try row.decode(String.self, forColumn: "organization_id"),
                createdBy: try row.decode(String?.self, forColumn: "created_by"),
                patient: try decodeJSON(PatientInfo.self, try row.decode(String.self, forColumn: "patient"), "patient", id),
                imageWidth: try row.decode(Int.self, forColumn: "image_width"),
                imageHeight: try row.decode(Int.self, forColumn: "image_height"),
                scan: try decodeJSON(ImageRef.self, try row.decode(String.self, forColumn: "scan"), "scan", id),
                results: try decodeJSON([StoredResult].self, try row.decode(String.self, forColumn: "results"), "results", id),
                timingsMs: try decodeJSON([String: Double].self, try row.decode(String.self, forColumn: "timings"), "timings", id),
                report: try row.decode(String?.self, forColumn: "report"),
                source: try row.decode(String?.self, forColumn: "source").map { text throws(StoreError) in
                    try decodeJSON(ScanSource.self, text, "source", id)
                },
                inputCheck: try row.decode(String?.self, forColumn: "input_check").map { text throws(StoreError) in
                    try decodeJSON(InputCheck.self, text, "input_check", id)
                } ?? .notRecorded,
                idempotencyFingerprint: try row.decode(String?.self, forColumn: "idempotency_fingerprint"))
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "stored analysis row is unreadable: \(error)")
        }
    }
}
