import Foundation
import GRDB
import MediscopeAuth
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

/// One write waiting in the outbox for delivery to the shared store (Firestore).
package struct OutboxEntry: Sendable, Equatable {
    /// What the delivery does with the entry.
    package enum Kind: String, Sendable, Codable {
        /// Create the analysis record and its images (`key`: the analysis id; body: the record's JSON).
        case analysisCreate = "analysis.create"
        /// Delete the analysis and the images no other record uses (`key`: the analysis id; no body).
        case analysisDelete = "analysis.delete"
        /// Append one audit entry (`key`: its id in decimal; body: the entry's JSON, id set).
        case auditAppend = "audit.append"
    }

    /// Position in the outbox: deliveries happen in this order.
    package let seq: Int64
    package let kind: Kind
    package let key: String
    /// The organisation the entry belongs to (nil for audit entries without one).
    package let organizationId: String?
    /// When the entry was made durable here (millisecond precision).
    package let enqueuedAt: Date
    /// JSON of the record or audit entry (empty for a delete).
    package let body: [UInt8]
    /// Delivery attempts begun so far; counted (durably) before each attempt is sent.
    package let attempts: Int
    /// Not before this time is the entry tried again.
    package let nextAttemptAt: Date
    /// The last failure, in words (Firestore's status and message; never the record's contents).
    package let lastError: String?
    /// Set once the shared store refused the entry for good; a parked entry is kept, never retried by
    /// itself, and counted in `OutboxStats.parked` until an operator requeues it.
    package let parkedAt: Date?
}

/// What the status page, /api/metrics and /api/ready report of the outbox.
package struct OutboxStats: Sendable, Codable, Equatable {
    /// Entries waiting for delivery (parked ones not included).
    package var depth: Int
    /// Entries the shared store refused for good, kept here.
    package var parked: Int
    /// When the oldest waiting entry was enqueued; nil when none waits.
    package var oldestEnqueuedAt: Date?
    /// Entries delivered since the outbox file was made.
    package var deliveries: Int64
    /// Attempts that failed and were scheduled again.
    package var retries: Int64
    /// Entries ever parked.
    package var parkedTotal: Int64
    /// Whether the last call of the delivery loop reached the shared store: nil before its first call.
    package var remoteReachable: Bool?
    /// Since when `remoteReachable` has had its value.
    package var remoteSince: Date?
    /// The last error the delivery loop saw reaching the shared store (status words, no data).
    package var remoteLastError: String?
}

/// How an outbox record stands for local reads: the newest pending entry of its id wins.
package enum OutboxRecordState: Sendable, Equatable {
    /// The outbox holds nothing for this id: ask the shared store.
    case absent
    /// Created here and not delivered yet (or parked): this is the record.
    case created(AnalysisRecord)
    /// A delete is waiting: the record is gone, whatever the shared store still says.
    case deleted
}

/// The local, durable outbox: a SQLite file (WAL, synchronous=FULL, so an enqueue is on disk before it
/// returns) of writes bound for the shared store, in order, with the images they carry.
///
/// Many worker processes enqueue; one delivery process (`OutboxDelivery`) sends entries in `seq` order
/// and removes them once the shared store has them. Reads on this host overlay what still waits here,
/// so a record is readable from the moment its upload returned 201.
///
/// Layout: `outbox.sqlite` under `directory` with tables `entries`, `entry_images`, `images` (bytes of
/// images that pending creates carry), `counters` (deliveries, retries, parked) and `remote` (the last
/// known reachability of the shared store).
package final class Outbox: Sendable {
    package static let fileName = "outbox.sqlite"
    let file: SQLiteStoreFile<StoreError>

    /// Opens (creating and migrating when needed) `directory/outbox.sqlite`.
    /// - Throws: `StoreError` `.io` or `.unavailable` when the file cannot be opened.
    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "outbox", label: "mediscope.outbox",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

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

    // MARK: - Enqueue (workers)

    /// Makes the creation of `record` with `images` (validated, each distinct) durable here.
    package func enqueueCreate(_ record: AnalysisRecord, images: [ImageBlob]) throws(StoreError) {
        let body: [UInt8]
        do { body = Array(try JSONEncoder.outbox.encode(record)) } catch {
            throw StoreError(.invalidRecord, "the analysis cannot be encoded")
        }
        try file.writeImmediate("enqueue analysis") { db in
            let seq = try Self.insert(db, .analysisCreate, key: record.id, organizationId: record.organizationId,
                                      patientId: record.patient.patientId, createdAt: record.createdAt.millisecondsSince1970, body: body)
            for blob in images {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO images (key, content_type, width, height, bytes) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [blob.ref.key, blob.ref.contentType, blob.ref.width, blob.ref.height, Data(blob.bytes)])
                try db.execute(sql: "INSERT OR IGNORE INTO entry_images (seq, key) VALUES (?, ?)", arguments: [seq, blob.ref.key])
            }
        }
    }

    /// Makes the deletion of analysis `id` of `organizationId` durable here. False when a delete of it
    /// waits already (two requests racing: only the first deletes).
    @discardableResult
    package func enqueueDelete(id: String, organizationId: String) throws(StoreError) -> Bool {
        try file.writeImmediate("enqueue delete") { db in
            let waiting = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM entries d WHERE d.key = ? AND d.kind = ?
                AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.key = d.key AND c.kind = ? AND c.seq > d.seq)
                """, arguments: [id, OutboxEntry.Kind.analysisDelete.rawValue, OutboxEntry.Kind.analysisCreate.rawValue]) ?? false
            if waiting { return false }
            _ = try Self.insert(db, .analysisDelete, key: id, organizationId: organizationId, patientId: nil, createdAt: nil, body: [])
            return true
        }
    }

    /// Makes the audit entry (its `id` set) durable here.
    package func enqueueAudit(_ entry: AuditEntry) throws(StoreError) {
        guard let id = entry.id else { throw StoreError(.invalidRecord, "an audit entry needs its id before it is enqueued") }
        let body: [UInt8]
        do { body = Array(try JSONEncoder.outbox.encode(entry)) } catch {
            throw StoreError(.invalidRecord, "the audit entry cannot be encoded")
        }
        try file.writeImmediate("enqueue audit entry") { db in
            _ = try Self.insert(db, .auditAppend, key: String(id), organizationId: entry.organizationId, patientId: nil,
                                createdAt: entry.time.millisecondsSince1970, body: body)
        }
    }

    private static func insert(_ db: Database, _ kind: OutboxEntry.Kind, key: String, organizationId: String?, patientId: String?,
                               createdAt: Int64?, body: [UInt8]) throws -> Int64 {
        try db.execute(sql: """
            INSERT INTO entries (kind, key, organization_id, patient_id, created_at, enqueued_at, body)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [kind.rawValue, key, organizationId, patientId, createdAt, Date().millisecondsSince1970, Data(body)])
        return db.lastInsertedRowID
    }

    // MARK: - Local reads (workers)

    /// How analysis `id` stands here (parked creates count as created: their data is kept and shown).
    package func recordState(id: String) throws(StoreError) -> OutboxRecordState {
        let row = try file.read("read outbox") { db in
            try Row.fetchOne(db, sql: """
                SELECT kind, body FROM entries WHERE key = ? AND kind IN (?, ?) ORDER BY seq DESC LIMIT 1
                """, arguments: [id, OutboxEntry.Kind.analysisCreate.rawValue, OutboxEntry.Kind.analysisDelete.rawValue])
        }
        guard let row else { return .absent }
        guard row["kind"] as String == OutboxEntry.Kind.analysisCreate.rawValue else { return .deleted }
        return .created(try Self.decodeRecord(row["body"]))
    }

    /// The organisation's records created here and not deleted here (optionally of one patient, exact
    /// match), and the ids of every record with a waiting delete (hidden whatever the shared store says).
    package func pendingRecords(organizationId: String, patientId: String?) throws(StoreError) -> (records: [AnalysisRecord], deleted: Set<String>) {
        let create = OutboxEntry.Kind.analysisCreate.rawValue, delete = OutboxEntry.Kind.analysisDelete.rawValue
        let (bodies, deleted) = try file.read("read outbox") { db in
            // The newest entry per id decides; a create shows only when no delete came after it.
            let bodies = try Data.fetchAll(db, sql: """
                SELECT body FROM entries e WHERE kind = ? AND organization_id = ? AND (? IS NULL OR patient_id = ?)
                AND NOT EXISTS (SELECT 1 FROM entries d WHERE d.key = e.key AND d.kind = ? AND d.seq > e.seq)
                """, arguments: [create, organizationId, patientId, patientId, delete])
            let deleted = try String.fetchAll(db, sql: "SELECT key FROM entries WHERE kind = ? AND organization_id = ?",
                                              arguments: [delete, organizationId])
            return (bodies, deleted)
        }
        var records: [AnalysisRecord] = []
        for body in bodies { records.append(try Self.decodeRecord(body)) }
        return (records, Set(deleted))
    }

    /// The bytes of an image a create here carries; nil when none does.
    package func imageBytes(key: String) throws(StoreError) -> [UInt8]? {
        try file.read("read outbox image") { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM images WHERE key = ?", arguments: [key]).map { Array($0) }
        }
    }

    /// Audit entries waiting here (parked ones included), of one organisation when given, by id.
    package func pendingAudit(organizationId: String?) throws(StoreError) -> [AuditEntry] {
        let bodies = try file.read("read outbox") { db in
            try Data.fetchAll(db, sql: """
                SELECT body FROM entries WHERE kind = ? AND (? IS NULL OR organization_id = ?) ORDER BY seq
                """, arguments: [OutboxEntry.Kind.auditAppend.rawValue, organizationId, organizationId])
        }
        var entries: [AuditEntry] = []
        for body in bodies {
            do { entries.append(try JSONDecoder.outbox.decode(AuditEntry.self, from: body)) } catch {
                throw StoreError(.io, "an audit entry in the outbox is unreadable")
            }
        }
        return entries
    }

    // MARK: - Delivery (one process)

    /// The oldest entry that is not parked, due or not; nil when nothing waits.
    package func head() throws(StoreError) -> OutboxEntry? {
        try file.read("read outbox head") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM entries WHERE parked_at IS NULL ORDER BY seq LIMIT 1").map(Self.entry)
        }
    }

    /// The images a create entry carries, with their bytes.
    package func images(of entry: OutboxEntry) throws(StoreError) -> [ImageBlob] {
        try file.read("read outbox images") { db in
            try Row.fetchAll(db, sql: """
                SELECT i.* FROM entry_images e JOIN images i ON i.key = e.key WHERE e.seq = ? ORDER BY i.key
                """, arguments: [entry.seq]).map { row in
                let bytes = Array(row["bytes"] as Data)
                return ImageBlob(ref: ImageRef(key: row["key"], contentType: row["content_type"], width: row["width"],
                                               height: row["height"], byteCount: bytes.count), bytes: bytes)
            }
        }
    }

    /// Counts an attempt before it is sent, so that after a crash mid-call the next attempt knows one
    /// may have reached the shared store. Returns the entry as it now stands.
    package func beginAttempt(_ entry: OutboxEntry) throws(StoreError) -> OutboxEntry {
        try file.writeImmediate("count outbox attempt") { db in
            try db.execute(sql: "UPDATE entries SET attempts = attempts + 1 WHERE seq = ?", arguments: [entry.seq])
            return try Row.fetchOne(db, sql: "SELECT * FROM entries WHERE seq = ?", arguments: [entry.seq]).map(Self.entry) ?? entry
        }
    }

    /// The shared store has the entry: it leaves the outbox with the images nothing else here needs.
    /// A delivered delete also takes parked creates of the same record with it (the user deleted them).
    package func markDelivered(_ entry: OutboxEntry) throws(StoreError) {
        try file.writeImmediate("remove delivered entry") { db in
            var seqs = [entry.seq]
            if entry.kind == .analysisDelete {
                seqs += try Int64.fetchAll(db, sql: "SELECT seq FROM entries WHERE key = ? AND kind = ? AND parked_at IS NOT NULL",
                                           arguments: [entry.key, OutboxEntry.Kind.analysisCreate.rawValue])
            }
            for seq in seqs {
                try db.execute(sql: "DELETE FROM entries WHERE seq = ?", arguments: [seq])
                try db.execute(sql: "DELETE FROM entry_images WHERE seq = ?", arguments: [seq])
            }
            try db.execute(sql: "DELETE FROM images WHERE key NOT IN (SELECT key FROM entry_images)")
            try db.execute(sql: "UPDATE counters SET value = value + 1 WHERE name = 'deliveries'")
        }
    }

    /// The attempt failed for now: try again at `at`, keeping `error` for the status page.
    package func scheduleRetry(_ entry: OutboxEntry, at: Date, error: String) throws(StoreError) {
        try file.writeImmediate("schedule outbox retry") { db in
            try db.execute(sql: "UPDATE entries SET next_attempt_at = ?, last_error = ? WHERE seq = ?",
                           arguments: [at.millisecondsSince1970, String(error.prefix(500)), entry.seq])
            try db.execute(sql: "UPDATE counters SET value = value + 1 WHERE name = 'retries'")
        }
    }

    /// The shared store refused the entry for good: it stays here, parked, and is counted.
    package func park(_ entry: OutboxEntry, error: String) throws(StoreError) {
        try file.writeImmediate("park outbox entry") { db in
            try db.execute(sql: "UPDATE entries SET parked_at = ?, last_error = ? WHERE seq = ?",
                           arguments: [Date().millisecondsSince1970, String(error.prefix(500)), entry.seq])
            try db.execute(sql: "UPDATE counters SET value = value + 1 WHERE name = 'parked'")
        }
    }

    /// Puts every parked entry back in the queue (after an operator fixed the cause), attempts reset.
    /// Returns how many. They are delivered in their original order, before newer entries.
    @discardableResult
    package func requeueParked() throws(StoreError) -> Int {
        try file.writeImmediate("requeue parked entries") { db in
            try db.execute(sql: "UPDATE entries SET parked_at = NULL, attempts = 0, next_attempt_at = 0 WHERE parked_at IS NOT NULL")
            return db.changesCount
        }
    }

    /// The parked entries, oldest first.
    package func parkedEntries() throws(StoreError) -> [OutboxEntry] {
        try file.read("read parked entries") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM entries WHERE parked_at IS NOT NULL ORDER BY seq").map(Self.entry)
        }
    }

    /// Records whether the shared store answered the last call (the time changes only with the value).
    package func setRemote(reachable: Bool, error: String?) throws(StoreError) {
        try file.writeImmediate("record remote state") { db in
            let current = try Bool.fetchOne(db, sql: "SELECT reachable FROM remote WHERE id = 1")
            if current == reachable {
                try db.execute(sql: "UPDATE remote SET last_error = coalesce(?, last_error) WHERE id = 1",
                               arguments: [error.map { String($0.prefix(500)) }])
            } else {
                try db.execute(sql: "INSERT OR REPLACE INTO remote (id, reachable, since, last_error) VALUES (1, ?, ?, ?)",
                               arguments: [reachable, Date().millisecondsSince1970, error.map { String($0.prefix(500)) }])
            }
        }
    }

    /// Depth, age, counters and the shared store's last known reachability.
    package func stats() throws(StoreError) -> OutboxStats {
        try file.read("read outbox stats") { db in
            let waiting = try Row.fetchOne(db, sql: """
                SELECT count(*) AS n, min(enqueued_at) AS oldest FROM entries WHERE parked_at IS NULL
                """)
            let parked = try Int.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE parked_at IS NOT NULL") ?? 0
            var counters: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, value FROM counters") { counters[row["name"]] = row["value"] }
            let remote = try Row.fetchOne(db, sql: "SELECT * FROM remote WHERE id = 1")
            return OutboxStats(
                depth: waiting?["n"] ?? 0, parked: parked,
                oldestEnqueuedAt: (waiting?["oldest"] as Int64?).map(Date.init(millisecondsSince1970:)),
                deliveries: counters["deliveries"] ?? 0, retries: counters["retries"] ?? 0, parkedTotal: counters["parked"] ?? 0,
                remoteReachable: remote.map { $0["reachable"] as Bool },
                remoteSince: (remote?["since"] as Int64?).map(Date.init(millisecondsSince1970:)),
                remoteLastError: remote?["last_error"])
        }
    }

    /// Throws unless the outbox can take writes now (uploads depend on it, not on the shared store).
    package func checkReady() throws(StoreError) {
        _ = try file.read("check outbox") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM counters") }
    }

    // MARK: - Rows

    private static func entry(_ row: Row) throws -> OutboxEntry {
        guard let kind = OutboxEntry.Kind(rawValue: row["kind"]) else {
            throw SQLiteFailure(.unavailable, "the outbox holds an entry of unknown kind")
        }
        return OutboxEntry(
            seq: row["seq"], kind: kind, key: row["key"], organizationId: row["organization_id"],
            enqueuedAt: Date(millisecondsSince1970: row["enqueued_at"]), body: Array(row["body"] as Data),
            attempts: row["attempts"], nextAttemptAt: Date(millisecondsSince1970: row["next_attempt_at"]),
            lastError: row["last_error"], parkedAt: (row["parked_at"] as Int64?).map(Date.init(millisecondsSince1970:)))
    }

    static func decodeRecord(_ body: Data) throws(StoreError) -> AnalysisRecord {
        do { return try JSONDecoder.outbox.decode(AnalysisRecord.self, from: body) } catch {
            throw StoreError(.io, "an analysis in the outbox is unreadable")
        }
    }
}

extension JSONEncoder {
    /// Dates as milliseconds since the epoch, so a record read back from the outbox equals the one written.
    static var outbox: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }
}

extension JSONDecoder {
    static var outbox: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }
}
