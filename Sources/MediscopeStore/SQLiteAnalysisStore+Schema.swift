import GRDB

// The analyses database's tables, as migrations. GRDB runs each named migration once per database, so a
// shipped one is never edited: a change is a new migration after the last.
extension SQLiteAnalysisStore {
    /// Creates or upgrades the analyses database (`v1`, `v2 source`, `v3 input check`, `v4 drawn heatmaps`,
    /// `v5 idempotency`).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE analyses (
                    id TEXT NOT NULL PRIMARY KEY,          -- 26-char ULID, time-ordered
                    created_at INTEGER NOT NULL,           -- ms since the epoch (the id's timestamp)
                    organization_id TEXT NOT NULL,
                    created_by TEXT,
                    patient_id TEXT NOT NULL,
                    patient TEXT NOT NULL,                 -- JSON PatientInfo
                    image_width INTEGER NOT NULL,
                    image_height INTEGER NOT NULL,
                    scan TEXT NOT NULL,                    -- JSON ImageRef
                    results TEXT NOT NULL,                 -- JSON [StoredResult]
                    timings TEXT NOT NULL,                 -- JSON [String: Double]
                    report TEXT
                );
                -- Keyset paging, newest first, scoped to an organisation.
                CREATE INDEX analyses_org_created ON analyses (organization_id, created_at, id);
                -- Same, filtered by patient.
                CREATE INDEX analyses_org_patient_created ON analyses (organization_id, patient_id, created_at, id);

                -- Which record uses which image: reference counting is a query.
                CREATE TABLE image_refs (
                    analysis_id TEXT NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
                    key TEXT NOT NULL,
                    PRIMARY KEY (analysis_id, key)
                ) WITHOUT ROWID;
                CREATE INDEX image_refs_key ON image_refs (key);
                """)
        }
        // What was analysed (format, EXIF orientation applied): JSON ScanSource, NULL in older records.
        migrator.registerMigration("v2 source") { db in
            try db.execute(sql: "ALTER TABLE analyses ADD COLUMN source TEXT")
        }
        // Whether the image was in the models' scope: JSON InputCheck, NULL in older records (read as
        // InputCheck.notRecorded).
        migrator.registerMigration("v3 input check") { db in
            try db.execute(sql: "ALTER TABLE analyses ADD COLUMN input_check TEXT")
        }
        // Which record names which heatmap drawn when first looked at (`ImageRef.drawing`): a drawn file
        // under blobs/drawn/ goes with the last of them. Not images (image_refs): no backup holds them.
        migrator.registerMigration("v4 drawn heatmaps") { db in
            try db.execute(sql: """
                CREATE TABLE drawn_refs (
                    analysis_id TEXT NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
                    key TEXT NOT NULL,
                    PRIMARY KEY (analysis_id, key)
                ) WITHOUT ROWID;
                CREATE INDEX drawn_refs_key ON drawn_refs (key);
                """)
        }
        // The fingerprint of the request that made a record under an Idempotency-Key; NULL otherwise.
        migrator.registerMigration("v5 idempotency") { db in
            try db.execute(sql: "ALTER TABLE analyses ADD COLUMN idempotency_fingerprint TEXT")
        }
        return migrator
    }
}
