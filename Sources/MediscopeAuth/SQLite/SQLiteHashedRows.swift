import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// A table of rows found by the SHA-256 of a secret (sessions, API tokens): the queries both stores share.
struct SQLiteHashedRows<Record>: Sendable {
    let file: SQLiteStoreFile<AuthError>
    let table: String
    let decode: @Sendable (Row) throws -> Record

    /// Inserts one row from column/value pairs (kept side by side); a taken id or hash is a conflict.
    func insert(_ what: String, _ values: KeyValuePairs<String, (any DatabaseValueConvertible)?>) throws(AuthError) {
        let columns = values.map(\.key).joined(separator: ", ")
        let placeholders = Array(repeating: "?", count: values.count).joined(separator: ", ")
        let arguments = StatementArguments(values.map(\.value))
        try file.writeImmediate(what) { db in
            try db.execute(sql: "INSERT INTO \(table) (\(columns)) VALUES (\(placeholders))", arguments: arguments)
        }
    }

    /// The row stored under `tokenHash`, or nil.
    func find(tokenHash: String, _ what: String) throws(AuthError) -> Record? {
        try file.read(what) { db in
            try Row.fetchOne(db, sql: "SELECT * FROM \(table) WHERE token_hash = ?", arguments: [tokenHash]).map(decode)
        }
    }

    /// Sets the millisecond `column` of row `id` to `date` when it is NULL or earlier. True when it changed.
    func moveForward(_ column: String, id: String, to date: Date, _ what: String) throws(AuthError) -> Bool {
        let ms = date.millisecondsSince1970
        return try file.writeImmediate(what) { db in
            try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE id = ? AND (\(column) IS NULL OR \(column) < ?)",
                           arguments: [ms, id, ms])
            return db.changesCount > 0
        }
    }
}
