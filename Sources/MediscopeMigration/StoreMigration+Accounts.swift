import Foundation
import MediscopeAuth

extension StoreMigration {
    /// Organisations by id: created only where Firestore has none (`insertOrganization`), never renamed.
    func copyOrganizations(_ export: SQLiteAccountsExport) throws(MigrationError) {
        let organizations = try reading("read the organisations") { () throws(AuthError) in try export.organizations() }
        for org in organizations {
            try decide(.organizations, org.id) { () throws(AuthError) -> Outcome in
                if !dryRun, try users.insertOrganization(id: org.id, name: org.name) { return .copied }
                guard let stored = try users.organizationName(id: org.id) else {
                    return dryRun ? .copied : .failed("neither created nor found")
                }
                return stored == org.name ? .alreadyThere : .differs
            }
        }
    }

    /// Users by id, with their password hashes; a username or Firebase uid that another user holds in
    /// Firestore fails the user (and then its sessions and tokens).
    func copyUsers(_ export: SQLiteAccountsExport) throws(MigrationError) {
        try paged("read the users", key: { $0.user.id }, { (after: String?) throws(AuthError) in
            try export.users(after: after, limit: pageSize)
        }) { row throws(MigrationError) in
            let user = row.user
            try decide(.users, user.id) { () throws(AuthError) -> Outcome in
                if let stored = try users.user(id: user.id) {
                    usersInFirestore.insert(user.id)
                    let storedHash = try users.credentials(username: stored.username)?.passwordHash
                    guard stored != user || storedHash != row.passwordHash else { return .alreadyThere }
                    // SQLite still decides: a user disabled, re-roled or given a new password since an
                    // earlier run must not come back as they were.
                    guard stored.username == user.username, stored.firebaseUID == user.firebaseUID || user.firebaseUID == nil else {
                        return .differs
                    }
                    if dryRun { return .updated }
                    if stored.disabled != user.disabled { try users.update(userId: user.id, .disabled(user.disabled)) }
                    if stored.role != user.role { try users.update(userId: user.id, .role(user.role)) }
                    if let hash = row.passwordHash, hash != storedHash { try users.update(userId: user.id, .passwordHash(hash)) }
                    if let uid = user.firebaseUID, stored.firebaseUID == nil { try users.update(userId: user.id, .firebaseUID(uid)) }
                    return .updated
                }
                if !dryRun { try users.insert(user, passwordHash: row.passwordHash) }
                usersInFirestore.insert(user.id)
                return .copied
            }
        }
    }

    /// Sessions by id (expired ones too: `Accounts` refuses them as it would have), found by token hash.
    func copySessions(_ export: SQLiteAccountsExport) throws(MigrationError) {
        try copyHashed(.sessions, { (after: String?) throws(AuthError) in
            try export.sessions(after: after, limit: pageSize).map { (record: $0.session, tokenHash: $0.tokenHash) }
        }, id: \.id, userId: \.userId,
           find: { (hash: String) throws(AuthError) in try sessions.session(tokenHash: hash) },
           insert: { (session: Session, hash: String) throws(AuthError) in try sessions.insert(session, tokenHash: hash) })
    }

    /// API tokens by id, revoked ones too, found by token hash. A token revoked in SQLite since an
    /// earlier run is revoked in Firestore too.
    func copyAPITokens(_ export: SQLiteAccountsExport) throws(MigrationError) {
        try copyHashed(.apiTokens, { (after: String?) throws(AuthError) in
            try export.apiTokens(after: after, limit: pageSize).map { (record: $0.token, tokenHash: $0.tokenHash) }
        }, id: \.id, userId: \.userId,
           find: { (hash: String) throws(AuthError) in try apiTokens.token(tokenHash: hash) },
           insert: { (token: APIToken, hash: String) throws(AuthError) in try apiTokens.insert(token, tokenHash: hash) },
           reconcile: { (stored: APIToken, token: APIToken) throws(AuthError) -> Bool in
               guard let revoked = token.revokedAt, stored.revokedAt == nil else { return false }
               if !dryRun { try apiTokens.revoke(tokenId: token.id, userId: token.userId, at: revoked) }
               return true
           })
    }

    /// Sessions or tokens from the pages `page` returns: each only for a user in Firestore; already
    /// there when `find` gives a record with its id under its token hash.
    /// `reconcile(stored, sqlite)` may bring a differing stored record to SQLite's state; true when it did.
    private func copyHashed<R: Equatable>(_ kind: MigrationReport.Kind, _ page: (String?) throws(AuthError) -> [(record: R, tokenHash: String)],
                                          id: (R) -> String, userId: (R) -> String, find: (String) throws(AuthError) -> R?,
                                          insert: (R, String) throws(AuthError) -> Void,
                                          reconcile: (R, R) throws(AuthError) -> Bool = { _, _ in false }) throws(MigrationError) {
        try paged("read the \(kind.label)", key: { id($0.record) }, page) { row throws(MigrationError) in
            try decide(kind, id(row.record)) { () throws(AuthError) -> Outcome in
                guard usersInFirestore.contains(userId(row.record)) else { return .failed("its user \(userId(row.record)) is not in Firestore") }
                if let stored = try find(row.tokenHash) {
                    guard id(stored) == id(row.record) else { return .failed("Firestore holds another \(kind.noun) under its token hash") }
                    if stored == row.record { return .alreadyThere }
                    return try reconcile(stored, row.record) ? .updated : .differs
                }
                if !dryRun { try insert(row.record, row.tokenHash) }
                return .copied
            }
        }
    }

    /// The audit log in SQLite's id order, each entry under its `MigratedAuditIDs` id. An id that holds
    /// a different entry in Firestore fails the entry (never overwritten, never appended twice).
    func copyAuditLog(_ export: SQLiteAccountsExport) throws(MigrationError) {
        var ids = MigratedAuditIDs()
        var after: Int64 = 0
        while true {
            let page = try reading("read the audit log") { () throws(AuthError) in try export.auditEntries(after: after, limit: pageSize) }
            guard let lastSQLiteId = page.last?.id else { return }
            let mapped = page.map { entry in
                var copy = entry
                copy.id = ids.next(time: entry.time)
                return (sqliteId: entry.id ?? 0, entry: copy, id: copy.id ?? 0)
            }
            let stored = try reading("read Firestore's audit log") { () throws(AuthError) in
                try storedAuditEntries(from: mapped[0].id, through: mapped[mapped.count - 1].id)
            }
            for (sqliteId, entry, id) in mapped {
                try decide(.auditEntries, String(sqliteId)) { () throws(AuthError) -> Outcome in
                    if let found = stored[id] {
                        return found == entry ? .alreadyThere : .failed("its id \(id) holds another entry in Firestore")
                    }
                    if !dryRun { try auditLog.insert(entry) }
                    return .copied
                }
            }
            after = lastSQLiteId
        }
    }

    /// Firestore's audit entries with ids in `first...last`, by id.
    private func storedAuditEntries(from first: Int64, through last: Int64) throws(AuthError) -> [Int64: AuditEntry] {
        var filter = AuditFilter()
        filter.afterId = first - 1
        filter.beforeId = last + 1
        filter.limit = 1000
        var found: [Int64: AuditEntry] = [:]
        while true {
            let page = try auditLog.entries(filter)
            for entry in page { if let id = entry.id { found[id] = entry } }
            guard page.count == filter.limit, let lastId = page.last?.id else { return found }
            filter.afterId = lastId
        }
    }
}
