import GRDB

// outbox.sqlite's tables. A shipped migration stays as it is (GRDB never runs it again on a file that has
// it): a change is a new one after `v1`.
extension Outbox {
    /// Creates or upgrades `outbox.sqlite` (`v1`).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE entries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- delivery order, never reused
                    kind TEXT NOT NULL,
                    key TEXT NOT NULL,                       -- analysis id or audit id
                    organization_id TEXT,
                    patient_id TEXT,                         -- creates: for the local list's filter
                    created_at INTEGER,                      -- creates: the record's time (ms), for local lists
                    enqueued_at INTEGER NOT NULL,            -- ms
                    body BLOB NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    parked_at INTEGER
                );
                CREATE INDEX entries_key ON entries(key);
                CREATE INDEX entries_waiting ON entries(parked_at, seq);
                CREATE TABLE entry_images (seq INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (seq, key));
                CREATE INDEX entry_images_key ON entry_images(key);
                CREATE TABLE images (
                    key TEXT NOT NULL PRIMARY KEY, content_type TEXT NOT NULL, width INTEGER NOT NULL,
                    height INTEGER NOT NULL, bytes BLOB NOT NULL
                );
                CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);
                INSERT INTO counters (name, value) VALUES ('deliveries', 0), ('retries', 0), ('parked', 0);
                CREATE TABLE remote (
                    id INTEGER PRIMARY KEY CHECK (id = 1), reachable INTEGER NOT NULL, since INTEGER NOT NULL,
                    last_error TEXT
                );
                """)
        }
        return migrator
    }
}
