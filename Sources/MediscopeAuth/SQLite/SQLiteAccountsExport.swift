import Foundation
import GRDB
import MediscopeSQLite

/// Read-everything access to an existing `accounts.sqlite`, for moving a deployment to another backend
/// (`mediscope store migrate`): organisations with their names, users with their password hashes and
/// Firebase links, sessions and API tokens (revoked ones too) with the SHA-256 of their token, and the
/// whole audit log in id order. SQLite-specific on purpose, not on the store protocols: a running server
/// never lists everything. It only reads; secrets stay what the file holds (argon2id PHC strings and
/// SHA-256 hex). Sign-in failures are not offered: throttling rows are forgotten within minutes anyway.
///
/// Paged methods return rows with a key greater than `after` (nil: from the first) in key order, at
/// most `limit` (clamped to 1...1000); pass the last key of a page to get the next, an empty page is
/// the end. Every method throws `AuthError` `.unavailable` when the file cannot be read.
package struct SQLiteAccountsExport: Sendable {
    let file: SQLiteStoreFile<AuthError>

    /// Opens `directory/accounts.sqlite`; it is never created here.
    /// - Throws: `.notFound` when there is no such file; `.unavailable` when it cannot be opened.
    package init(directory: URL) throws(AuthError) {
        let path = directory.appendingPathComponent(AccountStores.sqliteFileName).path
        guard FileManager.default.fileExists(atPath: path) else { throw AuthError(.notFound, "no accounts database at \(path)") }
        file = try SQLiteAccountsFile.open(directory: directory)
    }

    /// Every organisation as (id, name), by id.
    package func organizations() throws(AuthError) -> [(id: String, name: String)] {
        try file.read("export organisations") { db in
            try Row.fetchAll(db, sql: "SELECT id, name FROM organizations ORDER BY id").map { row in
                (id: try row.decode(String.self, forColumn: "id"), name: try row.decode(String.self, forColumn: "name"))
            }
        }
    }

    /// Users by id, each with its password hash (nil: no password sign-in).
    package func users(after: String?, limit: Int) throws(AuthError) -> [(user: User, passwordHash: String?)] {
        try page("users", after: after, limit: limit) { row in
            (user: try SQLiteUserStore.user(from: row), passwordHash: try row.decode(String?.self, forColumn: "password_hash"))
        }
    }

    /// Sessions by id (expired ones too), each with the SHA-256 hex of its cookie token.
    package func sessions(after: String?, limit: Int) throws(AuthError) -> [(session: Session, tokenHash: String)] {
        try page("sessions", after: after, limit: limit) { row in
            (session: try SQLiteSessionStore.session(from: row), tokenHash: try row.decode(String.self, forColumn: "token_hash"))
        }
    }

    /// API tokens by id (revoked ones too), each with the SHA-256 hex of the token.
    package func apiTokens(after: String?, limit: Int) throws(AuthError) -> [(token: APIToken, tokenHash: String)] {
        try page("api_tokens", after: after, limit: limit) { row in
            (token: try SQLiteAPITokenStore.token(from: row), tokenHash: try row.decode(String.self, forColumn: "token_hash"))
        }
    }

    /// Audit entries with an id greater than `after` (0: from the first), by id, each carrying its id.
    package func auditEntries(after: Int64, limit: Int) throws(AuthError) -> [AuditEntry] {
        var filter = AuditFilter()
        filter.afterId = after
        filter.limit = min(max(limit, 1), 1000)
        return try SQLiteAuditLogStore(file: file).entries(filter)
    }

    /// One page of `table` (whose key is the text column `id`), decoded by `decode`.
    private func page<T>(_ table: String, after: String?, limit: Int, _ decode: (Row) throws -> T) throws(AuthError) -> [T] {
        try file.read("export \(table)") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM \(table) WHERE id > ? ORDER BY id LIMIT ?",
                             arguments: [after ?? "", min(max(limit, 1), 1000)]).map(decode)
        }
    }
}
