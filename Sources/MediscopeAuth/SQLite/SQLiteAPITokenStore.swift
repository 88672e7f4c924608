import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `APITokenStore` over the `api_tokens` table of accounts.sqlite.
final class SQLiteAPITokenStore: APITokenStore {
    let file: SQLiteStoreFile<AuthError>

    init(file: SQLiteStoreFile<AuthError>) { self.file = file }

    func insert(_ token: APIToken, tokenHash: String) throws(AuthError) {
        try file.writeImmediate("create token") { db in
            try db.execute(sql: """
                INSERT INTO api_tokens (id, token_hash, user_id, name, created_at, last_used_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [token.id, tokenHash, token.userId, token.name, token.createdAt.millisecondsSince1970,
                                 token.lastUsedAt?.millisecondsSince1970, token.revokedAt?.millisecondsSince1970])
        }
    }

    func token(tokenHash: String) throws(AuthError) -> APIToken? {
        try file.read("read token") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE token_hash = ?", arguments: [tokenHash])
                .map(Self.token(from:))
        }
    }

    func tokens(userId: String) throws(AuthError) -> [APIToken] {
        try file.read("list tokens") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at, rowid",
                             arguments: [userId]).map(Self.token(from:))
        }
    }

    @discardableResult
    func revoke(tokenId: String, userId: String, at: Date) throws(AuthError) -> Bool {
        try file.writeImmediate("revoke token") { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                           arguments: [at.millisecondsSince1970, tokenId, userId])
            return db.changesCount > 0
        }
    }

    @discardableResult
    func touch(tokenId: String, lastUsedAt: Date) throws(AuthError) -> Bool {
        let used = lastUsedAt.millisecondsSince1970
        return try file.writeImmediate("touch token") { db in
            try db.execute(sql: """
                UPDATE api_tokens SET last_used_at = ?
                WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)
                """, arguments: [used, tokenId, used])
            return db.changesCount > 0
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["api_tokens"])
    }

    private static func token(from row: Row) throws -> APIToken {
        APIToken(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            name: try row.decode(String.self, forColumn: "name"),
            createdAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "created_at")),
            lastUsedAt: try row.decode(Int64?.self, forColumn: "last_used_at").map(Date.init(millisecondsSince1970:)),
            revokedAt: try row.decode(Int64?.self, forColumn: "revoked_at").map(Date.init(millisecondsSince1970:)))
    }
}
