import Foundation
import GRDB
import MediscopeEncoding
import Testing
import TestSupport
@testable import MediscopeAuth

/// An accounts.sqlite written by the code before the store split (`mediscope user add alice`, `add bob`,
/// `disable bob` with the main branch's binary) still opens and reads the same, and takes new writes.
@Suite struct AccountsFileCompatibilityTests {
    @Test func aFileFromBeforeTheSplitOpensAndReadsTheSame() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        try folder.rawConnection().writeWithoutTransaction { db in try db.execute(sql: Self.versionOneDump) }
        let clock = AccountsClock(Date(millisecondsSince1970: 1_795_970_800_000))
        let accounts = try AccountsFixtures.store(folder, clock: clock)
        try accounts.checkReady()

        let alice = try #require(try accounts.user(username: "alice"))
        #expect(alice.id == "01M8M363NN70RKBXHPX7X68DM0" && alice.displayName == "Dr Alice" && alice.role == .clinician)
        #expect(alice.createdAt == Date(millisecondsSince1970: 1_795_970_764_469) && !alice.disabled)
        #expect(try accounts.user(username: "bob")?.disabled == true)
        #expect(try accounts.listUsers(organizationId: "org-a").map(\.username) == ["alice", "bob"])
        #expect(try accounts.organizationName(id: "org-a") == "org-a")
        // argon2id hashes written then verify now; a disabled user still cannot sign in.
        #expect(try accounts.verifyPassword(username: "alice", password: "correct horse battery") == alice)
        #expect(try accounts.verifyPassword(username: "bob", password: "correct horse battery") == nil)
        #expect(try accounts.auditEntries(AuditFilter()).map(\.id) == [1, 2, 3])
        #expect(try accounts.auditEntries(AuditFilter()).last?.action == "user.update")

        // New writes land in the same tables.
        let (token, _, _) = try accounts.createSession(userId: alice.id)
        #expect(try accounts.session(token: token)?.1 == alice)
        let (apiToken, _) = try accounts.createToken(userId: alice.id, name: "cli")
        #expect(try accounts.user(forToken: apiToken)?.1 == alice)
        #expect(try accounts.audit(AuditEntry(time: clock.now, actorUserId: alice.id, actorUsername: "alice",
                                              organizationId: "org-a", action: "session.create", recordId: nil,
                                              address: "10.0.0.1", outcome: "success")) == 4)
    }

    /// `sqlite3 accounts.sqlite .dump` of that file.
    static let versionOneDump = """
        PRAGMA foreign_keys=OFF;
        BEGIN TRANSACTION;
        CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
        INSERT INTO grdb_migrations VALUES('v1');
        CREATE TABLE organizations (
            id TEXT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL
        );
        INSERT INTO organizations VALUES('org-a','org-a');
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
        INSERT INTO users VALUES('01M8M363NN70RKBXHPX7X68DM0','alice','Dr Alice','$argon2id$v=19$m=19456,t=2,p=1$WJKSMVuUrChz/Qrup2DhiQ$bjhBWKBdhrVBbBqyK3gIEKFvsKD/VexNsUtYXaFP6UU','clinician','org-a',0,1795970764469,NULL);
        INSERT INTO users VALUES('01M8M364D6N7R5MDYZNZQHGR9N','bob',NULL,'$argon2id$v=19$m=19456,t=2,p=1$bcV+2+zGDTTCqKoo55bToA$L2CrN3hazWmjg0N/U7ao92Y1/3iuUWQ+dCAaO8zDV+s','admin','org-a',1,1795970765222,NULL);
        CREATE TABLE sessions (
            id TEXT NOT NULL PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,          -- SHA-256 hex of the cookie token
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,              -- absolute expiry
            csrf_hash TEXT NOT NULL                   -- SHA-256 hex of the CSRF token
        );
        CREATE TABLE api_tokens (
            id TEXT NOT NULL PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,          -- SHA-256 hex of "msk_..."
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER,
            revoked_at INTEGER
        );
        CREATE TABLE sign_in_failures (
            username TEXT NOT NULL,                   -- as typed (normalised), may not exist
            address TEXT NOT NULL,
            at INTEGER NOT NULL
        );
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
        INSERT INTO audit_log VALUES(1,1795970764471,NULL,'cli:root','org-a','user.create','01M8M363NN70RKBXHPX7X68DM0','local','success');
        INSERT INTO audit_log VALUES(2,1795970765225,NULL,'cli:root','org-a','user.create','01M8M364D6N7R5MDYZNZQHGR9N','local','success');
        INSERT INTO audit_log VALUES(3,1795970765985,NULL,'cli:root','org-a','user.update','01M8M364D6N7R5MDYZNZQHGR9N','local','success');
        DELETE FROM sqlite_sequence;
        INSERT INTO sqlite_sequence VALUES('audit_log',3);
        CREATE INDEX users_org_username ON users (organization_id, username);
        CREATE INDEX sessions_user ON sessions (user_id);
        CREATE INDEX sessions_expires ON sessions (expires_at);
        CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
        CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);
        CREATE INDEX sign_in_failures_username ON sign_in_failures (username, at);
        CREATE INDEX sign_in_failures_address ON sign_in_failures (address, at);
        CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
        CREATE INDEX audit_log_org ON audit_log (organization_id, id);
        CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id);
        CREATE INDEX audit_log_action ON audit_log (action, id);
        CREATE INDEX audit_log_record ON audit_log (record_id, id);
        CREATE INDEX audit_log_time ON audit_log (time);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        COMMIT;
        """
}
