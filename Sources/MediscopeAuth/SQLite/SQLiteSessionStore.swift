import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `SessionStore` over the `sessions` table of accounts.sqlite.
final class SQLiteSessionStore: SessionStore {
    private let rows: SQLiteHashedRows<Session>

    init(file: SQLiteStoreFile<AuthError>) { rows = SQLiteHashedRows(file: file, table: "sessions", decode: Self.session(from:)) }

    func insert(_ session: Session, tokenHash: String) throws(AuthError) {
        try rows.insert("create session", [
            "id": session.id, "token_hash": tokenHash, "user_id": session.userId,
            "created_at": session.createdAt.millisecondsSince1970, "last_seen_at": session.lastSeenAt.millisecondsSince1970,
            "expires_at": session.expiresAt.millisecondsSince1970, "csrf_hash": session.csrfHash,
        ])
    }

    func session(tokenHash: String) throws(AuthError) -> Session? {
        try rows.find(tokenHash: tokenHash, "read session")
    }

    @discardableResult
    func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool {
        try rows.moveForward("last_seen_at", id: sessionId, to: lastSeenAt, "touch session")
    }

    @discardableResult
    func delete(sessionId: String) throws(AuthError) -> Bool {
        try deleteWhere("id = ?", sessionId, "delete session") > 0
    }

    @discardableResult
    func delete(tokenHash: String) throws(AuthError) -> Bool {
        try deleteWhere("token_hash = ?", tokenHash, "delete session") > 0
    }

    @discardableResult
    func deleteAll(userId: String) throws(AuthError) -> Int {
        try deleteWhere("user_id = ?", userId, "delete sessions")
    }

    @discardableResult
    func deleteExpired(now: Date, idleCutoff: Date) throws(AuthError) -> Int {
        try rows.file.writeImmediate("delete expired sessions") { db in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
                           arguments: [now.millisecondsSince1970, idleCutoff.millisecondsSince1970])
            return db.changesCount
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(rows.file, ["sessions"])
    }

    private func deleteWhere(_ condition: String, _ value: String, _ what: String) throws(AuthError) -> Int {
        try rows.file.writeImmediate(what) { db in
            try db.execute(sql: "DELETE FROM sessions WHERE " + condition, arguments: [value])
            return db.changesCount
        }
    }

    @Sendable static func session(from row: Row) throws -> Session {
        Session(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            createdAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "created_at")),
            lastSeenAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "last_seen_at")),
            expiresAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "expires_at")),
            csrfHash: try row.decode(String.self, forColumn: "csrf_hash"))
    }
}
