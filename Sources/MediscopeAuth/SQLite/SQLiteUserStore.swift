import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `UserStore` over the `users` and `organizations` tables of accounts.sqlite.
final class SQLiteUserStore: UserStore {
    let file: SQLiteStoreFile<AuthError>

    init(file: SQLiteStoreFile<AuthError>) { self.file = file }

    func saveOrganization(id: String, name: String) throws(AuthError) {
        try file.writeImmediate("save organisation") { db in
            try db.execute(sql: """
                INSERT INTO organizations (id, name) VALUES (?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name WHERE name != excluded.name
                """, arguments: [id, name])
        }
    }

    func organizationName(id: String) throws(AuthError) -> String? {
        try file.read("read organisation") { db in
            try String.fetchOne(db, sql: "SELECT name FROM organizations WHERE id = ?", arguments: [id])
        }
    }

    func insert(_ user: User, passwordHash: String?) throws(AuthError) {
        try file.writeImmediate("add user") { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?)",
                                 arguments: [user.username]) == true {
                throw AuthError(.conflict, "username is taken")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO organizations (id, name) VALUES (?, ?)",
                           arguments: [user.organizationId, user.organizationId])
            try db.execute(sql: """
                INSERT INTO users (id, username, display_name, password_hash, role, organization_id,
                                   disabled, created_at, firebase_uid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [user.id, user.username, user.displayName, passwordHash, user.role.rawValue,
                                 user.organizationId, user.disabled, user.createdAt.millisecondsSince1970,
                                 user.firebaseUID])
        }
    }

    func user(id: String) throws(AuthError) -> User? {
        try fetchUser("SELECT * FROM users WHERE id = ?", id)
    }

    func user(username: String) throws(AuthError) -> User? {
        try fetchUser("SELECT * FROM users WHERE username = ?", username)
    }

    func user(firebaseUID: String) throws(AuthError) -> User? {
        try fetchUser("SELECT * FROM users WHERE firebase_uid = ?", firebaseUID)
    }

    func credentials(username: String) throws(AuthError) -> (user: User, passwordHash: String?)? {
        try file.read("read user") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ?", arguments: [username])
            else { return nil }
            return (try Self.user(from: row), row["password_hash"] as String?)
        }
    }

    func users(organizationId: String?) throws(AuthError) -> [User] {
        try file.read("list users") { db in
            let rows: [Row]
            if let organizationId {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM users WHERE organization_id = ? ORDER BY username",
                                        arguments: [organizationId])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY username")
            }
            return try rows.map(Self.user(from:))
        }
    }

    func userCount() throws(AuthError) -> Int {
        try file.read("count users") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0 }
    }

    @discardableResult
    func update(userId: String, _ change: UserChange) throws(AuthError) -> User {
        try file.writeImmediate("update user") { db in
            guard let current = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [userId])
            else { throw AuthError(.notFound, "no such user") }
            switch change {
            case .passwordHash(let hash):
                try db.execute(sql: "UPDATE users SET password_hash = ? WHERE id = ?", arguments: [hash, userId])
            case .disabled(let disabled):
                try db.execute(sql: "UPDATE users SET disabled = ? WHERE id = ?", arguments: [disabled, userId])
            case .role(let role):
                try db.execute(sql: "UPDATE users SET role = ? WHERE id = ?", arguments: [role.rawValue, userId])
            case .firebaseUID(let uid):
                let linked = current["firebase_uid"] as String?
                if linked == uid { return try Self.user(from: current) }
                if linked != nil { throw AuthError(.conflict, "user is linked to another Firebase account") }
                if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE firebase_uid = ?)",
                                     arguments: [uid]) == true {
                    throw AuthError(.conflict, "Firebase account is linked to another user")
                }
                try db.execute(sql: "UPDATE users SET firebase_uid = ? WHERE id = ?", arguments: [uid, userId])
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [userId]) else {
                throw AuthError(.notFound, "no such user")
            }
            return try Self.user(from: row)
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["organizations", "users"])
    }

    private func fetchUser(_ sql: String, _ key: String) throws(AuthError) -> User? {
        try file.read("read user") { db in
            try Row.fetchOne(db, sql: sql, arguments: [key]).map(Self.user(from:))
        }
    }

    static func user(from row: Row) throws -> User {
        let roleName: String = try row.decode(String.self, forColumn: "role")
        guard let role = Role(rawValue: roleName) else {
            throw AuthError(.unavailable, "stored user has an unknown role")
        }
        return User(
            id: try row.decode(String.self, forColumn: "id"),
            username: try row.decode(String.self, forColumn: "username"),
            displayName: try row.decode(String?.self, forColumn: "display_name"),
            role: role,
            organizationId: try row.decode(String.self, forColumn: "organization_id"),
            disabled: try row.decode(Bool.self, forColumn: "disabled"),
            createdAt: Date(millisecondsSince1970: try row.decode(Int64.self, forColumn: "created_at")),
            firebaseUID: try row.decode(String?.self, forColumn: "firebase_uid"))
    }
}
