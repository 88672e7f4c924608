import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `SessionStore` over the `sessions` table of accounts.sqlite.
final class SQLiteSessionStore: SessionStore {
    let file: SQLiteStoreFile<AuthError>

    init(file: SQLiteStoreFile<AuthError>) { self.file = file }

    func insert(_ session: Session, tokenHash: String) throws(AuthError) {
        try file.writeImmediate("create session") { db in
            try db.execute(sql: """
                INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, csrf_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [session.id, tokenHash, session.userId, session.createdAt.millisecondsSince1970,
                                 session.lastSeenAt.millisecondsSince1970, session.expiresAt.millisecondsSince1970,
                                 session.csrfHash])
        }
    }

    func session(tokenHash: String) throws(AuthError) -> Session? {
        try file.read("read session") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE token_hash = ?", arguments: [tokenHash])
                .map(Self.session(from:))
        }
    }

    @discardableResult
    func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool {
        let seen = lastSeenAt.millisecondsSince1970
        return try file.writeImmediate("touch session") { db in
            try db.execute(sql: "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
                           arguments: [seen, sessionId, seen])
            return db.changesCount > 0
        }
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
        try file.writeImmediate("delete expired sessions") { db in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
                           arguments: [now.millisecondsSince1970, idleCutoff.millisecondsSince1970])
            return db.changesCount
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["sessions"])
    }

    private func deleteWhere(_ condition: String, _ value: String, _ what: String) throws(AuthError) -> Int {
        try file.writeImmediate(what) { db in
            try db.execute(sql: "DELETE FROM sessions WHERE " + condition, arguments: [value])
            return db.changesCount
        }
    }

    private static func session(from row: Row) throws -> Session {
        Session(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            createdAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "created_at")),
            lastSeenAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "last_seen_at")),
            expiresAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "expires_at")),
            csrfHash: try row.decode(String.self, forColumn: "csrf_hash"))
    }
}
