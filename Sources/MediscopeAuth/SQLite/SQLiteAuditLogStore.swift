import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `AuditLogStore` over the `audit_log` table of accounts.sqlite, whose triggers refuse UPDATE and
/// DELETE (append-only even against a bug in this program) and whose AUTOINCREMENT ids are never reused.
final class SQLiteAuditLogStore: AuditLogStore {
    let file: SQLiteStoreFile<AuthError>

    init(file: SQLiteStoreFile<AuthError>) { self.file = file }

    func append(_ entry: AuditEntry) throws(AuthError) -> Int64 {
        let arguments: StatementArguments = [
            entry.time.millisecondsSince1970, entry.actorUserId, entry.actorUsername, entry.organizationId,
            entry.action, entry.recordId, entry.address, entry.outcome,
        ]
        return try file.writeImmediate("append audit entry") { db in
            try db.execute(sql: """
                INSERT INTO audit_log (time, actor_user_id, actor_username, organization_id, action, record_id,
                                       address, outcome)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: arguments)
            return db.lastInsertedRowID
        }
    }

    func entries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
        var conditions: [String] = []
        var arguments = StatementArguments()
        func add(_ condition: String, _ values: [(any DatabaseValueConvertible)?]) {
            conditions.append(condition)
            _ = arguments.append(contentsOf: StatementArguments(values))
        }
        if let v = filter.organizationId { add("organization_id = ?", [v]) }
        if let v = filter.actorUserId { add("actor_user_id = ?", [v]) }
        if let action = filter.action {
            if action.hasSuffix(".") {
                // [prefix, prefix with its final "." bumped to "/"): a range the action index can serve.
                add("action >= ? AND action < ?", [action, String(action.dropLast()) + "/"])
            } else {
                add("action = ?", [action])
            }
        }
        if let v = filter.recordId { add("record_id = ?", [v]) }
        if let v = filter.outcome { add("outcome = ?", [v]) }
        if let v = filter.since { add("time >= ?", [v.millisecondsSince1970]) }
        if let v = filter.until { add("time < ?", [v.millisecondsSince1970]) }
        if let v = filter.afterId { add("id > ?", [v]) }
        if let v = filter.beforeId { add("id < ?", [v]) }
        var sql = "SELECT * FROM audit_log"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += filter.newestFirst ? " ORDER BY id DESC LIMIT ?" : " ORDER BY id LIMIT ?"
        _ = arguments.append(contentsOf: [filter.limit])
        return try file.read("read audit log") { db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.entry(from:))
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["audit_log"])
    }

    private static func entry(from row: Row) throws -> AuditEntry {
        var entry = AuditEntry(
            time: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "time")),
            actorUserId: try row.decode(String?.self, forColumn: "actor_user_id"),
            actorUsername: try row.decode(String?.self, forColumn: "actor_username"),
            organizationId: try row.decode(String?.self, forColumn: "organization_id"),
            action: try row.decode(String.self, forColumn: "action"),
            recordId: try row.decode(String?.self, forColumn: "record_id"),
            address: try row.decode(String.self, forColumn: "address"),
            outcome: try row.decode(String.self, forColumn: "outcome"))
        entry.id = try row.decode(Int64.self, forColumn: "id")
        return entry
    }
}
