import Foundation
import GRDB
import MediscopeSQLite

/// Accounts, sessions, API tokens, sign-in throttling and the audit log in one SQLite file
/// (`directory/accounts.sqlite`, WAL, synchronous=FULL).
///
/// One instance per worker process, opened after fork: several processes share the file, and SQLite's
/// write lock (taken up front with BEGIN IMMEDIATE) is the cross-process lock. Every expiry and window is
/// measured with the injected `now` clock, so tests can move time.
///
/// Secrets never reach the file: passwords are stored as argon2id hashes, session, CSRF and API tokens
/// as SHA-256 hex digests. Error messages carry SQLite codes and messages, never statement arguments.
public final class AccountStore: @unchecked Sendable {
    public static let databaseFileName = "accounts.sqlite"
    /// last_seen_at / last_used_at are written at most this often per session or token (no write per request).
    public static let touchInterval: TimeInterval = 60

    public let directory: URL
    public let databasePath: String
    public let policy: AccountPolicy
    let hasher: PasswordHasher
    private let now: @Sendable () -> Date
    private let dbQueue: DatabaseQueue

    public convenience init(directory: URL, policy: AccountPolicy = .init(),
                            now: @escaping @Sendable () -> Date = Date.init) throws(AuthError) {
        try self.init(directory: directory, policy: policy, now: now, hasher: .owasp)
    }

    /// `hasher` lets tests use cheap argon2 parameters; production always uses `.owasp`.
    init(directory: URL, policy: AccountPolicy, now: @escaping @Sendable () -> Date,
         hasher: PasswordHasher) throws(AuthError) {
        self.directory = directory.standardizedFileURL
        self.policy = policy
        self.now = now
        self.hasher = hasher
        let dirPath = self.directory.path
        do {
            try FileManager.default.createDirectory(atPath: dirPath, withIntermediateDirectories: true)
        } catch {
            throw AuthError(.unavailable, "cannot create accounts folder \(dirPath): \(error.localizedDescription)")
        }
        databasePath = dirPath + "/" + Self.databaseFileName

        // WAL, synchronous=FULL (an audit record, a revocation is durable before it returns), 5 s busy
        // timeout, and statement arguments (usernames, hashes) kept out of errors.
        do {
            dbQueue = try SQLiteDatabase.open(path: databasePath, label: "mediscope.accounts") { db in
                // Deleted rows (sessions, token hashes) are overwritten, not left in free pages.
                try db.execute(sql: "PRAGMA secure_delete = ON")
            }
        } catch {
            throw Self.authError(error, "open accounts database")
        }
        do {
            try SQLiteDatabase.migrate(Self.migrator, dbQueue)
        } catch {
            throw Self.authError(error, "migrate accounts database")
        }
    }

    // MARK: - Schema

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE organizations (
                    id TEXT NOT NULL PRIMARY KEY,
                    name TEXT NOT NULL
                );

                CREATE TABLE users (
                    id TEXT NOT NULL PRIMARY KEY,             -- 26-char time-ordered id
                    username TEXT NOT NULL UNIQUE,            -- lowercase
                    display_name TEXT,
                    password_hash TEXT,                       -- argon2id PHC string; NULL: no password sign-in
                    role TEXT NOT NULL CHECK (role IN ('admin', 'clinician')),
                    organization_id TEXT NOT NULL REFERENCES organizations(id),
                    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
                    created_at INTEGER NOT NULL,              -- ms since the epoch
                    firebase_uid TEXT UNIQUE                  -- NULLs do not collide
                );
                CREATE INDEX users_org_username ON users (organization_id, username);

                CREATE TABLE sessions (
                    id TEXT NOT NULL PRIMARY KEY,
                    token_hash TEXT NOT NULL UNIQUE,          -- SHA-256 hex of the cookie token
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL,
                    last_seen_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,              -- absolute expiry
                    csrf_hash TEXT NOT NULL                   -- SHA-256 hex of the CSRF token
                );
                CREATE INDEX sessions_user ON sessions (user_id);
                CREATE INDEX sessions_expires ON sessions (expires_at);
                CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

                CREATE TABLE api_tokens (
                    id TEXT NOT NULL PRIMARY KEY,
                    token_hash TEXT NOT NULL UNIQUE,          -- SHA-256 hex of "msk_..."
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    last_used_at INTEGER,
                    revoked_at INTEGER
                );
                CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);

                CREATE TABLE sign_in_failures (
                    username TEXT NOT NULL,                   -- as typed (normalised), may not exist
                    address TEXT NOT NULL,
                    at INTEGER NOT NULL
                );
                CREATE INDEX sign_in_failures_username ON sign_in_failures (username, at);
                CREATE INDEX sign_in_failures_address ON sign_in_failures (address, at);
                CREATE INDEX sign_in_failures_at ON sign_in_failures (at);

                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- never reused, even after the last row
                    time INTEGER NOT NULL,
                    actor_user_id TEXT,
                    actor_username TEXT,
                    organization_id TEXT,
                    action TEXT NOT NULL,
                    record_id TEXT,
                    address TEXT NOT NULL,
                    outcome TEXT NOT NULL
                );
                CREATE INDEX audit_log_org ON audit_log (organization_id, id);
                CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id);
                CREATE INDEX audit_log_action ON audit_log (action, id);
                CREATE INDEX audit_log_record ON audit_log (record_id, id);
                CREATE INDEX audit_log_time ON audit_log (time);

                -- Append-only, even against a bug in this program.
                CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
                CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
                BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
                """)
        }
        return migrator
    }

    public func checkReady() throws(AuthError) {
        let tables: Int
        do {
            tables = try dbQueue.read { db in
                try Int.fetchOne(db, sql: """
                    SELECT count(*) FROM sqlite_master
                    WHERE type = 'table' AND name IN ('users', 'sessions', 'api_tokens', 'audit_log')
                    """) ?? 0
            }
        } catch {
            throw Self.authError(error, "check accounts database")
        }
        guard tables == 4 else { throw AuthError(.unavailable, "accounts database is missing tables") }
    }

    // MARK: - Organisations

    /// Creates the organisation, or renames it when it exists under another name.
    public func ensureOrganization(id: String, name: String) throws(AuthError) {
        try Self.validateOrganizationId(id)
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 200, !Self.hasControlCharacters(name) else {
            throw AuthError(.invalid, "organisation name must be 1...200 printable characters")
        }
        try writeImmediate("ensure organisation") { db in
            try db.execute(sql: """
                INSERT INTO organizations (id, name) VALUES (?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name WHERE name != excluded.name
                """, arguments: [id, name])
        }
    }

    /// The organisation's display name; nil when there is no such organisation.
    public func organizationName(id: String) throws(AuthError) -> String? {
        try read("read organisation") { db in
            try String.fetchOne(db, sql: "SELECT name FROM organizations WHERE id = ?", arguments: [id])
        }
    }

    // MARK: - Users

    @discardableResult
    public func addUser(username: String, password: String, role: Role, organizationId: String,
                        displayName: String? = nil) throws(AuthError) -> User {
        guard let name = Self.normalizedUsername(username) else {
            throw AuthError(.invalid, "username must be 3...64 characters of a-z 0-9 . _ @ -")
        }
        try Self.validateOrganizationId(organizationId)
        let display = try Self.normalizedDisplayName(displayName)
        try checkPasswordPolicy(password)
        // Cheap checks first; the slow hash is computed outside the write lock.
        if try user(username: name) != nil { throw AuthError(.conflict, "username is taken") }
        let hash = try hasher.hash(password)
        let created = Self.roundedToMs(now())
        let user = User(id: SortableID.next(now: created), username: name, displayName: display, role: role,
                        organizationId: organizationId, disabled: false, createdAt: created, firebaseUID: nil)
        try writeImmediate("add user") { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?)",
                                 arguments: [name]) == true {
                throw AuthError(.conflict, "username is taken")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO organizations (id, name) VALUES (?, ?)",
                           arguments: [organizationId, organizationId])
            try db.execute(sql: """
                INSERT INTO users (id, username, display_name, password_hash, role, organization_id,
                                   disabled, created_at, firebase_uid)
                VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL)
                """, arguments: [user.id, name, display, hash, role.rawValue, organizationId, Self.ms(created)])
        }
        return user
    }

    /// Sets a new password and ends every session of the user.
    @discardableResult
    public func setPassword(username: String, password: String) throws(AuthError) -> User {
        try checkPasswordPolicy(password)
        guard let existing = try user(username: username) else { throw AuthError(.notFound, "no such user") }
        let hash = try hasher.hash(password)
        return try updateUser(existing.id, "set password") { db in
            try db.execute(sql: "UPDATE users SET password_hash = ? WHERE id = ?", arguments: [hash, existing.id])
            try db.execute(sql: "DELETE FROM sessions WHERE user_id = ?", arguments: [existing.id])
        }
    }

    /// Disabling ends every session; the user's API tokens are refused while disabled.
    @discardableResult
    public func setDisabled(username: String, _ disabled: Bool) throws(AuthError) -> User {
        guard let existing = try user(username: username) else { throw AuthError(.notFound, "no such user") }
        return try updateUser(existing.id, "set disabled") { db in
            try db.execute(sql: "UPDATE users SET disabled = ? WHERE id = ?", arguments: [disabled, existing.id])
            if disabled {
                try db.execute(sql: "DELETE FROM sessions WHERE user_id = ?", arguments: [existing.id])
            }
        }
    }

    @discardableResult
    public func setRole(username: String, _ role: Role) throws(AuthError) -> User {
        guard let existing = try user(username: username) else { throw AuthError(.notFound, "no such user") }
        return try updateUser(existing.id, "set role") { db in
            try db.execute(sql: "UPDATE users SET role = ? WHERE id = ?", arguments: [role.rawValue, existing.id])
        }
    }

    /// Links a Firebase account to a user. Conflict when the uid belongs to another user or the user is
    /// already linked to another uid (re-linking is never silent).
    @discardableResult
    public func linkFirebase(uid: String, userId: String) throws(AuthError) -> User {
        guard !uid.isEmpty, uid.utf8.count <= 128, !Self.hasControlCharacters(uid) else {
            throw AuthError(.invalid, "Firebase uid must be 1...128 printable characters")
        }
        return try updateUser(userId, "link Firebase account") { db in
            let current = try String?.fetchOne(db, sql: "SELECT firebase_uid FROM users WHERE id = ?", arguments: [userId]) ?? nil
            if current == uid { return }
            if current != nil { throw AuthError(.conflict, "user is linked to another Firebase account") }
            if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE firebase_uid = ?)",
                                 arguments: [uid]) == true {
                throw AuthError(.conflict, "Firebase account is linked to another user")
            }
            try db.execute(sql: "UPDATE users SET firebase_uid = ? WHERE id = ?", arguments: [uid, userId])
        }
    }

    /// Users of one organisation (or all), by username.
    public func listUsers(organizationId: String?) throws(AuthError) -> [User] {
        try read("list users") { db in
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

    public func user(id: String) throws(AuthError) -> User? {
        try fetchUser("SELECT * FROM users WHERE id = ?", id)
    }

    public func user(username: String) throws(AuthError) -> User? {
        guard let name = Self.normalizedUsername(username) else { return nil }
        return try fetchUser("SELECT * FROM users WHERE username = ?", name)
    }

    public func user(firebaseUID: String) throws(AuthError) -> User? {
        try fetchUser("SELECT * FROM users WHERE firebase_uid = ?", firebaseUID)
    }

    public func userCount() throws(AuthError) -> Int {
        try read("count users") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0 }
    }

    // MARK: - Passwords

    /// The user when the password is right and the user is enabled; nil otherwise. Every outcome costs
    /// one argon2 verification, so the time taken does not tell which usernames exist.
    public func verifyPassword(username: String, password: String) throws(AuthError) -> User? {
        guard let name = Self.normalizedUsername(username) else {
            hasher.burnVerification(password)
            return nil
        }
        let found: (User, String?)? = try read("read user") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ?", arguments: [name])
            else { return nil }
            return (try Self.user(from: row), row["password_hash"] as String?)
        }
        guard let (user, hash) = found, let hash else {
            hasher.burnVerification(password)
            return nil
        }
        let matches = hasher.verify(password, encoded: hash)
        return matches && !user.disabled ? user : nil
    }

    /// Throws `.weakPassword` (too short, or one character repeated) or `.invalid` (too long).
    public func checkPasswordPolicy(_ password: String) throws(AuthError) {
        guard password.utf8.count <= PasswordHasher.maximumPasswordBytes else {
            throw AuthError(.invalid, "password is longer than \(PasswordHasher.maximumPasswordBytes) bytes")
        }
        guard password.count >= policy.minimumPasswordLength else {
            throw AuthError(.weakPassword, "password must have at least \(policy.minimumPasswordLength) characters")
        }
        if let first = password.first, password.allSatisfy({ $0 == first }) {
            throw AuthError(.weakPassword, "password must not be one character repeated")
        }
    }

    // MARK: - Sessions

    /// A new session for an enabled user. The token goes in the cookie, the CSRF token in the page;
    /// only their SHA-256 digests are stored. Also prunes expired sessions.
    public func createSession(userId: String) throws(AuthError) -> (token: String, csrfToken: String, session: Session) {
        let token = Tokens.newSecret()
        let csrfToken = Tokens.newSecret()
        let created = Self.roundedToMs(now())
        let session = Session(id: SortableID.next(now: created), userId: userId, createdAt: created, lastSeenAt: created,
                              expiresAt: Self.roundedToMs(created.addingTimeInterval(policy.sessionAbsoluteSeconds)),
                              csrfHash: Tokens.sha256Hex(csrfToken))
        let idleCutoff = Self.ms(created) - Self.ms(seconds: policy.sessionIdleSeconds)
        try writeImmediate("create session") { db in
            guard let disabled = try Bool.fetchOne(db, sql: "SELECT disabled FROM users WHERE id = ?", arguments: [userId])
            else { throw AuthError(.notFound, "no such user") }
            if disabled { throw AuthError(.invalid, "user is disabled") }
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
                           arguments: [Self.ms(created), idleCutoff])
            try db.execute(sql: """
                INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, csrf_hash)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [session.id, Tokens.sha256Hex(token), userId, Self.ms(created), Self.ms(created),
                                 Self.ms(session.expiresAt), session.csrfHash])
        }
        return (token, csrfToken, session)
    }

    /// The session and its user, or nil when the token is unknown, the session is past its absolute or
    /// idle expiry, or the user is gone or disabled. Records activity at most once per `touchInterval`.
    public func session(token: String) throws(AuthError) -> (Session, User)? {
        guard Tokens.looksLikeSecret(token) else { return nil }
        let tokenHash = Tokens.sha256Hex(token)
        let found: (Session, User?)? = try read("read session") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE token_hash = ?", arguments: [tokenHash])
            else { return nil }
            let session = try Self.session(from: row)
            let userRow = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [session.userId])
            return (session, try userRow.map(Self.user(from:)))
        }
        guard let (stored, user) = found else { return nil }
        var session = stored
        let current = now()
        let expired = current >= session.expiresAt
            || current >= session.lastSeenAt.addingTimeInterval(policy.sessionIdleSeconds)
        guard !expired, let user, !user.disabled else {
            // Best effort: a failed clean-up only leaves a row the next createSession prunes.
            _ = try? writeImmediate("delete expired session") { db in
                try db.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [session.id])
            }
            return nil
        }
        // Touch often enough that a short idle limit (tests, strict sites) still sees activity.
        if current.timeIntervalSince(session.lastSeenAt) >= min(Self.touchInterval, policy.sessionIdleSeconds / 4) {
            let seen = Self.roundedToMs(current)
            let touched = try? writeImmediate("touch session") { db in
                try db.execute(sql: "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
                               arguments: [Self.ms(seen), session.id, Self.ms(seen)])
                return db.changesCount > 0
            }
            if touched == true { session.lastSeenAt = seen }
        }
        return (session, user)
    }

    /// Signs out one session. True when it existed.
    @discardableResult
    public func deleteSession(token: String) throws(AuthError) -> Bool {
        guard Tokens.looksLikeSecret(token) else { return false }
        let tokenHash = Tokens.sha256Hex(token)
        return try writeImmediate("delete session") { db in
            try db.execute(sql: "DELETE FROM sessions WHERE token_hash = ?", arguments: [tokenHash])
            return db.changesCount > 0
        }
    }

    /// Signs out every session of a user. Returns how many ended.
    @discardableResult
    public func deleteSessions(userId: String) throws(AuthError) -> Int {
        try writeImmediate("delete sessions") { db in
            try db.execute(sql: "DELETE FROM sessions WHERE user_id = ?", arguments: [userId])
            return db.changesCount
        }
    }

    /// True when `token` is the CSRF token issued with `session` (digests compared in constant time).
    public func verifyCSRF(session: Session, token: String) -> Bool {
        guard !token.isEmpty, token.utf8.count <= 256 else { return false }
        return Tokens.constantTimeEquals(Tokens.sha256Hex(token), session.csrfHash)
    }

    // MARK: - API tokens

    /// A new API token ("msk_" + 32 random bytes, base64url). The token is shown once; only its digest is kept.
    public func createToken(userId: String, name: String) throws(AuthError) -> (token: String, info: APIToken) {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 100, !Self.hasControlCharacters(name) else {
            throw AuthError(.invalid, "token name must be 1...100 printable characters")
        }
        let token = Tokens.newAPIToken()
        let created = Self.roundedToMs(now())
        let info = APIToken(id: SortableID.next(now: created), userId: userId, name: name, createdAt: created,
                            lastUsedAt: nil, revokedAt: nil)
        try writeImmediate("create token") { db in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE id = ?)", arguments: [userId]) == true
            else { throw AuthError(.notFound, "no such user") }
            try db.execute(sql: """
                INSERT INTO api_tokens (id, token_hash, user_id, name, created_at, last_used_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, NULL, NULL)
                """, arguments: [info.id, Tokens.sha256Hex(token), userId, name, Self.ms(created)])
        }
        return (token, info)
    }

    /// Every token of a user, revoked ones included, oldest first.
    public func tokens(userId: String) throws(AuthError) -> [APIToken] {
        try read("list tokens") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at, rowid",
                             arguments: [userId]).map(Self.token(from:))
        }
    }

    /// Revokes one of the user's tokens. False when it does not exist, is another user's, or was already revoked.
    @discardableResult
    public func revokeToken(id: String, userId: String) throws(AuthError) -> Bool {
        let revoked = Self.ms(now())
        return try writeImmediate("revoke token") { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                           arguments: [revoked, id, userId])
            return db.changesCount > 0
        }
    }

    /// The token and its user; nil when the token is unknown or revoked, or the user is gone or disabled.
    /// Records use at most once per `touchInterval`.
    public func user(forToken token: String) throws(AuthError) -> (APIToken, User)? {
        guard Tokens.looksLikeAPIToken(token) else { return nil }
        let tokenHash = Tokens.sha256Hex(token)
        let found: (APIToken, User?)? = try read("read token") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE token_hash = ?", arguments: [tokenHash])
            else { return nil }
            let info = try Self.token(from: row)
            let userRow = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [info.userId])
            return (info, try userRow.map(Self.user(from:)))
        }
        guard let (stored, user) = found, stored.revokedAt == nil, let user, !user.disabled else { return nil }
        var info = stored
        let current = Self.roundedToMs(now())
        if info.lastUsedAt.map({ current.timeIntervalSince($0) >= Self.touchInterval }) ?? true {
            let touched = try? writeImmediate("touch token") { db in
                try db.execute(sql: """
                    UPDATE api_tokens SET last_used_at = ?
                    WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)
                    """, arguments: [Self.ms(current), info.id, Self.ms(current)])
                return db.changesCount > 0
            }
            if touched == true { info.lastUsedAt = current }
        }
        return (info, user)
    }

    // MARK: - Sign-in throttling

    /// Seconds until a sign-in for this username from this address is allowed again, or nil when it is
    /// allowed now. Throttled when the failures within `failureWindowSeconds` reach the per-account or the
    /// per-address maximum; the wait lasts until enough of them leave the window.
    public func signInRetryAfter(username: String, address: String) throws(AuthError) -> Int? {
        let name = Self.throttleKey(username), addr = Self.throttleKey(address)
        let nowMs = Self.ms(now())
        let windowMs = Self.ms(seconds: policy.failureWindowSeconds)
        let (accountLimit, addressLimit) = (policy.maxFailuresPerAccount, policy.maxFailuresPerAddress)
        // The failure whose leaving the window brings the count below the maximum is the maximum-th newest.
        let (byAccount, byAddress): (Int64?, Int64?) = try read("read sign-in failures") { db in
            func limiting(_ column: String, _ key: String, _ limit: Int) throws -> Int64? {
                guard limit >= 1 else { return nil }
                return try Int64.fetchOne(db, sql: """
                    SELECT at FROM sign_in_failures WHERE \(column) = ? AND at > ?
                    ORDER BY at DESC LIMIT 1 OFFSET ?
                    """, arguments: [key, nowMs - windowMs, limit - 1])
            }
            return (try limiting("username", name, accountLimit), try limiting("address", addr, addressLimit))
        }
        let waits = [byAccount, byAddress].compactMap { $0 }.map { $0 + windowMs - nowMs }
        guard let longest = waits.max(), longest > 0 else { return nil }
        return Int((Double(longest) / 1000).rounded(.up))
    }

    /// Records one failed sign-in (unknown user and wrong password alike) and prunes failures older than the window.
    public func recordSignInFailure(username: String, address: String) throws(AuthError) {
        let name = Self.throttleKey(username), addr = Self.throttleKey(address)
        let nowMs = Self.ms(now())
        let cutoff = nowMs - Self.ms(seconds: policy.failureWindowSeconds)
        try writeImmediate("record sign-in failure") { db in
            try db.execute(sql: "DELETE FROM sign_in_failures WHERE at <= ?", arguments: [cutoff])
            try db.execute(sql: "INSERT INTO sign_in_failures (username, address, at) VALUES (?, ?, ?)",
                           arguments: [name, addr, nowMs])
        }
    }

    /// Forgets the account's failures after a good sign-in (the address's failures stay counted).
    public func clearSignInFailures(username: String) throws(AuthError) {
        let name = Self.throttleKey(username)
        try writeImmediate("clear sign-in failures") { db in
            try db.execute(sql: "DELETE FROM sign_in_failures WHERE username = ?", arguments: [name])
        }
    }

    // MARK: - Audit

    /// Appends one entry durably (synchronous=FULL: on disk when this returns). Returns its id.
    @discardableResult
    public func audit(_ entry: AuditEntry) throws(AuthError) -> Int64 {
        guard !entry.action.isEmpty, entry.action.utf8.count <= 64 else {
            throw AuthError(.invalid, "audit action must be 1...64 bytes")
        }
        guard !entry.outcome.isEmpty, entry.outcome.utf8.count <= 32 else {
            throw AuthError(.invalid, "audit outcome must be 1...32 bytes")
        }
        // Caller-supplied text (a username as typed, a forwarded address) is bounded, not refused:
        // an attack must still leave its trace.
        let arguments: StatementArguments = [
            Self.ms(entry.time), entry.actorUserId.map { Self.clip($0, 64) }, entry.actorUsername.map { Self.clip($0, 128) },
            entry.organizationId.map { Self.clip($0, 128) }, entry.action, entry.recordId.map { Self.clip($0, 128) },
            Self.clip(entry.address, 64), entry.outcome,
        ]
        return try writeImmediate("append audit entry") { db in
            try db.execute(sql: """
                INSERT INTO audit_log (time, actor_user_id, actor_username, organization_id, action, record_id,
                                       address, outcome)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: arguments)
            return db.lastInsertedRowID
        }
    }

    /// Entries matching every set field of the filter, oldest first by id, at most `limit` (1...1000).
    /// `since` is inclusive, `until` exclusive; an action ending in "." matches as a prefix.
    public func auditEntries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
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
        if let v = filter.since { add("time >= ?", [Self.ms(v)]) }
        if let v = filter.until { add("time < ?", [Self.ms(v)]) }
        if let v = filter.afterId { add("id > ?", [v]) }
        if let v = filter.beforeId { add("id < ?", [v]) }
        var sql = "SELECT * FROM audit_log"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += filter.newestFirst ? " ORDER BY id DESC LIMIT ?" : " ORDER BY id LIMIT ?"
        _ = arguments.append(contentsOf: [min(max(filter.limit, 1), 1000)])
        return try read("read audit log") { db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.auditEntry(from:))
        }
    }

    // MARK: - Helpers

    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws(AuthError) -> T {
        do {
            return try dbQueue.read(body)
        } catch {
            throw Self.authError(error, what)
        }
    }

    /// Runs `body` in a BEGIN IMMEDIATE transaction (the write lock, taken up front).
    @discardableResult
    private func writeImmediate<T>(_ what: String, _ body: (Database) throws -> T) throws(AuthError) -> T {
        do {
            return try SQLiteDatabase.writeImmediate(dbQueue, body)
        } catch {
            throw Self.authError(error, what)
        }
    }

    /// Runs `body` against an existing user under the write lock and returns the user as updated.
    private func updateUser(_ userId: String, _ what: String, _ body: (Database) throws -> Void) throws(AuthError) -> User {
        try writeImmediate(what) { db in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM users WHERE id = ?)", arguments: [userId]) == true
            else { throw AuthError(.notFound, "no such user") }
            try body(db)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [userId]) else {
                throw AuthError(.notFound, "no such user")
            }
            return try Self.user(from: row)
        }
    }

    private func fetchUser(_ sql: String, _ key: String) throws(AuthError) -> User? {
        try read("read user") { db in
            try Row.fetchOne(db, sql: sql, arguments: [key]).map(Self.user(from:))
        }
    }

    private static func user(from row: Row) throws -> User {
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
            createdAt: date(ms: try row.decode(Int64.self, forColumn: "created_at")),
            firebaseUID: try row.decode(String?.self, forColumn: "firebase_uid"))
    }

    private static func session(from row: Row) throws -> Session {
        Session(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            createdAt: date(ms: try row.decode(Int64.self, forColumn: "created_at")),
            lastSeenAt: date(ms: try row.decode(Int64.self, forColumn: "last_seen_at")),
            expiresAt: date(ms: try row.decode(Int64.self, forColumn: "expires_at")),
            csrfHash: try row.decode(String.self, forColumn: "csrf_hash"))
    }

    private static func token(from row: Row) throws -> APIToken {
        APIToken(
            id: try row.decode(String.self, forColumn: "id"),
            userId: try row.decode(String.self, forColumn: "user_id"),
            name: try row.decode(String.self, forColumn: "name"),
            createdAt: date(ms: try row.decode(Int64.self, forColumn: "created_at")),
            lastUsedAt: try row.decode(Int64?.self, forColumn: "last_used_at").map(date(ms:)),
            revokedAt: try row.decode(Int64?.self, forColumn: "revoked_at").map(date(ms:)))
    }

    private static func auditEntry(from row: Row) throws -> AuditEntry {
        var entry = AuditEntry(
            time: date(ms: try row.decode(Int64.self, forColumn: "time")),
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

    /// Lowercased and trimmed; nil unless 3...64 characters of [a-z0-9._@-].
    static func normalizedUsername(_ username: String) -> String? {
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let utf8 = name.utf8
        guard (3...64).contains(utf8.count) else { return nil }
        let allowed = utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "@") || c == UInt8(ascii: "-")
        }
        return allowed ? name : nil
    }

    private static func normalizedDisplayName(_ displayName: String?) throws(AuthError) -> String? {
        guard let trimmed = displayName?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else { return nil }
        guard trimmed.count <= 100, !hasControlCharacters(trimmed) else {
            throw AuthError(.invalid, "display name must be at most 100 printable characters")
        }
        return trimmed
    }

    private static func validateOrganizationId(_ id: String) throws(AuthError) {
        guard !id.isEmpty, id.utf8.count <= 128, !hasControlCharacters(id),
              id.trimmingCharacters(in: .whitespacesAndNewlines) == id
        else { throw AuthError(.invalid, "organisation id must be 1...128 printable characters") }
    }

    private static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Username or address as a throttling key: trimmed, lowercased, bounded.
    private static func throttleKey(_ text: String) -> String {
        clip(text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(), 128)
    }

    private static func clip(_ text: String, _ maxCharacters: Int) -> String {
        text.count <= maxCharacters ? text : String(text.prefix(maxCharacters))
    }

    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func ms(seconds: Double) -> Int64 { Int64((seconds * 1000).rounded()) }
    static func date(ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
    /// Dates handed out equal the dates read back (the file keeps milliseconds).
    static func roundedToMs(_ date: Date) -> Date { Self.date(ms: ms(date)) }

    // MARK: - Errors

    /// Every failure as an AuthError. Messages carry SQLite's code and message, never statement arguments.
    static func authError(_ error: any Error, _ what: String) -> AuthError {
        if let error = error as? AuthError { return error }
        let kind: AuthError.Kind
        if let error = error as? DatabaseError {
            switch error.extendedResultCode {
            case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
                kind = .conflict
            default:
                kind = error.resultCode == .SQLITE_CONSTRAINT ? .invalid : .unavailable
            }
        } else {
            kind = .unavailable
        }
        return AuthError(kind, SQLiteDatabase.describe(error, what))
    }
}
