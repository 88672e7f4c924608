import Foundation
import GRDB
import MediscopeSQLite

extension AccountStores {
    /// The file the SQLite stores keep everything in, inside the store folder.
    package static let sqliteFileName = "accounts.sqlite"

    /// All five stores over one SQLite file, `directory/accounts.sqlite` (WAL, synchronous=FULL, created
    /// and migrated when needed). One instance per worker process, opened after fork: several processes
    /// share the file, and SQLite's write lock (taken up front with BEGIN IMMEDIATE) is the
    /// cross-process lock. Deleted rows (sessions, token hashes) are overwritten, not left in free pages.
    package static func sqlite(directory: URL) throws(AuthError) -> AccountStores {
        let file = try SQLiteAccountsFile.open(directory: directory)
        return AccountStores(
            users: SQLiteUserStore(file: file), sessions: SQLiteSessionStore(file: file),
            apiTokens: SQLiteAPITokenStore(file: file), signInThrottle: SQLiteSignInThrottleStore(file: file),
            auditLog: SQLiteAuditLogStore(file: file))
    }
}

/// The schema of `accounts.sqlite` and how its failures become `AuthError`s. Dates are INTEGER
/// milliseconds since the epoch; secrets are stored only as argon2id PHC strings or SHA-256 hex.
enum SQLiteAccountsFile {
    static func open(directory: URL) throws(AuthError) -> SQLiteStoreFile<AuthError> {
        try SQLiteStoreFile(directory: directory, fileName: AccountStores.sqliteFileName, name: "accounts",
                            label: "mediscope.accounts", migrator: migrator,
                            prepare: { db in try db.execute(sql: "PRAGMA secure_delete = ON") },
                            mapFailure: authError)
    }

    /// UNIQUE and PRIMARY KEY violations are conflicts, other constraints invalid input, the rest unavailability.
    @Sendable static func authError(_ failure: SQLiteFailure) -> AuthError {
        switch failure.kind {
        case .duplicate: AuthError(.conflict, failure.message)
        case .constraint: AuthError(.invalid, failure.message)
        case .storage, .unavailable: AuthError(.unavailable, failure.message)
        }
    }

    /// Throws `.unavailable` unless every table in `tables` exists.
    static func checkTables(_ file: SQLiteStoreFile<AuthError>, _ tables: [String]) throws(AuthError) {
        let found = try file.read("check accounts database") { db in
            try tables.filter { try db.tableExists($0) }.count
        }
        guard found == tables.count else { throw AuthError(.unavailable, "accounts database is missing tables") }
    }

    // Version 1 is the schema every existing accounts.sqlite has; change it only by adding migrations.
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
        // Version 2: the addresses each account signed in from, so throttling spares its owner there.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE TABLE sign_in_known_addresses (
                    username TEXT NOT NULL,                   -- normalised, as in sign_in_failures
                    address_hash TEXT NOT NULL,               -- SHA-256 hex of the address salted with the username
                    last_success_at INTEGER NOT NULL,
                    PRIMARY KEY (username, address_hash)
                );
                CREATE INDEX sign_in_known_addresses_at ON sign_in_known_addresses (last_success_at);
                """)
        }
        return migrator
    }
}
