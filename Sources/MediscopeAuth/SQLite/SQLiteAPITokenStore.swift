import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `APITokenStore` over the `api_tokens` table of accounts.sqlite.
final class SQLiteAPITokenStore: APITokenStore {
    private let rows: SQLiteHashedRows<APIToken>

    init(file: SQLiteStoreFile<AuthError>) { rows = SQLiteHashedRows(file: file, table: "api_tokens", decode: Self.token(from:)) }

    func insert(_ token: APIToken, tokenHash: String) throws(AuthError) {
        try rows.insert("create token", [
            "id": token.id, "token_hash": tokenHash, "user_id": token.userId, "name": token.name,
            "created_at": token.createdAt.millisecondsSince1970, "last_used_at": token.lastUsedAt?.millisecondsSince1970,
            "revoked_at": token.revokedAt?.millisecondsSince1970,
        ])
    }

    func token(tokenHash: String) throws(AuthError) -> APIToken? {
        try rows.find(tokenHash: tokenHash, "read token")
    }

    func tokens(userId: String) throws(AuthError) -> [APIToken] {
        try rows.file.read("list tokens") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at, rowid",
                             arguments: [userId]).map(Self.token(from:))
        }
    }

    @discardableResult
    func revoke(tokenId: String, userId: String, at: Date) throws(AuthError) -> Bool {
        try rows.file.writeImmediate("revoke token") { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                           arguments: [at.millisecondsSince1970, tokenId, userId])
            return db.changesCount > 0
        }
    }

    @discardableResult
    func revokeAll(userId: String, at: Date) throws(AuthError) -> Int {
        try rows.file.writeImmediate("revoke tokens") { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                           arguments: [at.millisecondsSince1970, userId])
            return db.changesCount
        }
    }

    @discardableResult
    func touch(tokenId: String, lastUsedAt: Date) throws(AuthError) -> Bool {
        try rows.moveForward("last_used_at", id: tokenId, to: lastUsedAt, "touch token")
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(rows.file, ["api_tokens"])
    }

    @Sendable static func token(from row: Row) throws -> APIToken {
        APIToken(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            name: try row.decode(String.self, forColumn: "name"),
            createdAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "created_at")),
            lastUsedAt: try row.decode(Int64?.self, forColumn: "last_used_at").map(Date.init(millisecondsSince1970:)),
            revokedAt: try row.decode(Int64?.self, forColumn: "revoked_at").map(Date.init(millisecondsSince1970:)))
    }
}
