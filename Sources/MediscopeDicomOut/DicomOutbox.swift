import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

/// The durable queue of DICOM objects bound for the PACS (`dicom-out.sqlite`, WAL, synchronous=FULL): the
/// outbox's pattern for `dicom.destinations`.
///
/// - Workers enqueue (an analysis's SR and Secondary Captures, a signed report's SR); one delivery process
///   (`DicomDelivery`) sends. An entry names the object (analysis, SR version or result), not its bytes:
///   the object is written when it is sent, so the queue stays small and a deleted analysis is never sent.
/// - Once per destination and SOP Instance UID: queueing an object again is a no-op, delivered or not.
/// - In order per destination: only the oldest waiting entries of a destination are due, so a VERIFIED
///   SR never reaches the PACS before the SR it replaces.
/// - A destination that cannot be reached waits (its own back-off), its entries untouched; an object the
///   destination refuses is tried again after a back-off and parked after the limit. Parked entries wait
///   for `requeue`; the rest go on.
/// - Delivered and gone entries are kept (for the once-only rule and the operator) until `prune`.
package final class DicomOutbox: Sendable {
    package static let fileName = "dicom-out.sqlite"
    let file: SQLiteStoreFile<StoreError>

    /// An object to queue for every destination named.
    package struct NewEntry: Sendable, Equatable {
        package var analysisId: String
        package var organizationId: String
        package var object: DicomOutboxEntry.Object
        package var part: String
        package var sopInstanceUID: String

        package init(analysisId: String, organizationId: String, object: DicomOutboxEntry.Object, part: String, sopInstanceUID: String) {
            self.analysisId = analysisId; self.organizationId = organizationId; self.object = object; self.part = part
            self.sopInstanceUID = sopInstanceUID
        }
    }

    /// Opens (creating and migrating when needed) `directory/dicom-out.sqlite`.
    /// - Throws: `StoreError` `.io` or `.unavailable` when the file cannot be opened.
    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "dicom-out", label: "mediscope.dicom-out",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // A shipped migration stays as it is: a change is a new one after v1.
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE entries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- delivery order, never reused
                    destination TEXT NOT NULL,
                    analysis_id TEXT NOT NULL,
                    organization_id TEXT NOT NULL,
                    object TEXT NOT NULL,                    -- sr | sc
                    part TEXT NOT NULL,                      -- report version (sr) or result id (sc)
                    sop_instance_uid TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'waiting',   -- waiting | parked | delivered | gone
                    attempts INTEGER NOT NULL DEFAULT 0,     -- refusals by the destination
                    enqueued_at INTEGER NOT NULL,            -- ms
                    next_attempt_at INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    settled_at INTEGER,
                    UNIQUE (destination, sop_instance_uid)
                );
                CREATE INDEX entries_waiting ON entries(destination, state, seq);
                CREATE INDEX entries_analysis ON entries(analysis_id);
                CREATE TABLE destinations (
                    name TEXT NOT NULL PRIMARY KEY, reachable INTEGER, since INTEGER, last_error TEXT,
                    failures INTEGER NOT NULL DEFAULT 0, retry_at INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE counters (
                    destination TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (destination, name)
                );
                """)
        }
        return migrator
    }

    // MARK: - Enqueue (workers)

    /// Queues each of `entries` for each of `destinations`, unless queued before. Returns how many were added.
    @discardableResult
    package func enqueue(_ entries: [NewEntry], destinations: [String], now: Date = Date()) throws(StoreError) -> Int {
        guard !entries.isEmpty, !destinations.isEmpty else { return 0 }
        return try file.writeImmediate("enqueue DICOM objects") { db in
            var added = 0
            for destination in destinations {
                for entry in entries {
                    try db.execute(sql: """
                        INSERT OR IGNORE INTO entries (destination, analysis_id, organization_id, object, part, sop_instance_uid, enqueued_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [destination, entry.analysisId, entry.organizationId, entry.object.rawValue, entry.part,
                                         entry.sopInstanceUID, now.millisecondsSince1970])
                    added += db.changesCount
                }
            }
            return added
        }
    }

    // MARK: - Delivery (the delivery process)

    /// The entries of `destination` to send now, oldest first: its oldest waiting entries while they are due,
    /// at most `limit`. Empty while the destination or its oldest entry backs off.
    package func due(destination: String, limit: Int, now: Date = Date()) throws(StoreError) -> [DicomOutboxEntry] {
        let ms = now.millisecondsSince1970
        return try file.read("read due DICOM objects") { db in
            let retryAt = try Int64.fetchOne(db, sql: "SELECT retry_at FROM destinations WHERE name = ?", arguments: [destination]) ?? 0
            if retryAt > ms { return [] }
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM entries WHERE destination = ? AND state = 'waiting' ORDER BY seq LIMIT ?
                """, arguments: [destination, limit])
            // Order is kept: nothing behind an entry that backs off is due.
            return Array(rows.map(Self.entry).prefix { $0.nextAttemptAt.millisecondsSince1970 <= ms })
        }
    }

    /// When `destination` is tried again after it could not be reached (nil: now).
    package func retryAt(destination: String) throws(StoreError) -> Date? {
        try file.read("read destination") { db in
            try Int64.fetchOne(db, sql: "SELECT retry_at FROM destinations WHERE name = ? AND retry_at > 0", arguments: [destination])
                .map(Date.init(millisecondsSince1970:))
        }
    }

    /// The destination acknowledged `entries`.
    package func markDelivered(_ entries: [DicomOutboxEntry], now: Date = Date()) throws(StoreError) {
        guard let destination = entries.first?.destination else { return }
        try settle(entries.map(\.seq), state: .delivered, error: nil, destination: destination, counter: "delivered", now: now)
    }

    /// `entry`'s analysis or report version no longer exists: it is settled as gone, never sent.
    package func markGone(_ entry: DicomOutboxEntry, reason: String, now: Date = Date()) throws(StoreError) {
        try settle([entry.seq], state: .gone, error: reason, destination: entry.destination, counter: "gone", now: now)
    }

    /// Sets `entry` aside at once (it cannot be written), until an operator requeues it.
    package func park(_ entry: DicomOutboxEntry, error: String, now: Date = Date()) throws(StoreError) {
        try settle([entry.seq], state: .parked, error: error, destination: entry.destination, counter: "parked", now: now)
    }

    /// The destination refused `entry` (`error`, no patient data): tried again at `retryAt`, or parked when
    /// this was attempt `maxAttempts`. Returns true when it was parked.
    @discardableResult
    package func refused(_ entry: DicomOutboxEntry, error: String, maxAttempts: Int, retryAt: Date,
                         now: Date = Date()) throws(StoreError) -> Bool {
        try file.writeImmediate("record a refusal") { db in
            try Self.add(db, entry.destination, "refused", 1)
            let attempts = try Int.fetchOne(db, sql: "SELECT attempts FROM entries WHERE seq = ?", arguments: [entry.seq]) ?? 0
            let error = String(error.prefix(500))
            if attempts + 1 >= maxAttempts {
                try db.execute(sql: """
                    UPDATE entries SET attempts = attempts + 1, state = 'parked', last_error = ?, settled_at = ? WHERE seq = ?
                    """, arguments: [error, now.millisecondsSince1970, entry.seq])
                try Self.add(db, entry.destination, "parked", 1)
                return true
            }
            try db.execute(sql: "UPDATE entries SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
                           arguments: [retryAt.millisecondsSince1970, error, entry.seq])
            return false
        }
    }

    /// Whether `destination` answered this round: reachable clears its back-off; unreachable (`error`, no
    /// patient data) waits `backoff(n)` seconds, n the rounds in a row it was not reached (this one
    /// included). Returns n.
    @discardableResult
    package func destination(_ destination: String, reachable: Bool, error: String? = nil, now: Date = Date(),
                             backoff: (Int) -> Double = { _ in 0 }) throws(StoreError) -> Int {
        try file.writeImmediate("record a destination's state") { db in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM destinations WHERE name = ?", arguments: [destination])
            let was: Bool? = row?["reachable"]
            let since: Int64 = was == reachable ? (row?["since"] ?? now.millisecondsSince1970) : now.millisecondsSince1970
            let failures = reachable ? 0 : (row?["failures"] as Int? ?? 0) + 1
            try db.execute(sql: """
                INSERT OR REPLACE INTO destinations (name, reachable, since, last_error, failures, retry_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [destination, reachable, since, reachable ? nil : error.map { String($0.prefix(500)) }, failures,
                                 reachable ? 0 : now.addingTimeInterval(backoff(failures)).millisecondsSince1970])
            if !reachable { try Self.add(db, destination, "unreachable", 1) }
            return failures
        }
    }

    /// Puts parked entries (of `destination`, or of all when nil) back in the queue, attempts reset; they
    /// go in their original order, before newer entries. Also ends every back-off (the destinations' and
    /// their waiting entries'), so an operator who fixed the cause sees them tried at once. Returns how many
    /// entries were parked.
    @discardableResult
    package func requeue(destination: String? = nil) throws(StoreError) -> Int {
        try file.writeImmediate("requeue parked DICOM objects") { db in
            let filter = destination == nil ? "" : " AND destination = ?"
            let arguments = StatementArguments(destination.map { [$0] } ?? [])
            try db.execute(sql: """
                UPDATE entries SET state = 'waiting', attempts = 0, next_attempt_at = 0, settled_at = NULL WHERE state = 'parked'
                """ + filter, arguments: arguments)
            let count = db.changesCount
            try db.execute(sql: "UPDATE entries SET next_attempt_at = 0 WHERE state = 'waiting'" + filter, arguments: arguments)
            try db.execute(sql: "UPDATE destinations SET retry_at = 0, failures = 0 WHERE 1" + filter.replacingOccurrences(of: "destination", with: "name"),
                           arguments: arguments)
            return count
        }
    }

    /// Removes delivered and gone entries settled before `date` (an object queued again after that is sent
    /// again). Returns how many.
    @discardableResult
    package func prune(settledBefore date: Date) throws(StoreError) -> Int {
        try file.writeImmediate("prune settled DICOM objects") { db in
            try db.execute(sql: "DELETE FROM entries WHERE state IN ('delivered', 'gone') AND settled_at < ?",
                           arguments: [date.millisecondsSince1970])
            return db.changesCount
        }
    }

    // MARK: - Reads (status, tests)

    /// Entries of `destination` (all when nil) in `state` (all when nil), oldest first, at most `limit`.
    package func entries(destination: String? = nil, state: DicomOutboxEntry.State? = nil, analysisId: String? = nil,
                         limit: Int = 1000) throws(StoreError) -> [DicomOutboxEntry] {
        try file.read("read DICOM objects") { db in
            var conditions: [String] = [], arguments: [any DatabaseValueConvertible] = []
            if let destination { conditions.append("destination = ?"); arguments.append(destination) }
            if let state { conditions.append("state = ?"); arguments.append(state.rawValue) }
            if let analysisId { conditions.append("analysis_id = ?"); arguments.append(analysisId) }
            let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(db, sql: "SELECT * FROM entries" + filter + " ORDER BY seq LIMIT ?",
                                    arguments: StatementArguments(arguments + [limit])).map(Self.entry)
        }
    }

    /// The figures of each of `destinations` (the configured ones, in their order).
    package func stats(destinations: [String]) throws(StoreError) -> [DicomDestinationStats] {
        try file.read("read DICOM delivery stats") { db in
            try destinations.map { name in
                let waiting = try Row.fetchOne(db, sql: """
                    SELECT count(*) AS n, min(enqueued_at) AS oldest FROM entries WHERE destination = ? AND state = 'waiting'
                    """, arguments: [name])
                let parked = try Int.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE destination = ? AND state = 'parked'",
                                              arguments: [name]) ?? 0
                var counters: [String: Int64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT name, value FROM counters WHERE destination = ?", arguments: [name]) {
                    counters[row["name"]] = row["value"]
                }
                let state = try Row.fetchOne(db, sql: "SELECT * FROM destinations WHERE name = ?", arguments: [name])
                let retryAt: Int64 = state?["retry_at"] ?? 0
                return DicomDestinationStats(
                    name: name, waiting: waiting?["n"] ?? 0, parked: parked, delivered: counters["delivered"] ?? 0,
                    gone: counters["gone"] ?? 0, refusedAttempts: counters["refused"] ?? 0, parkedTotal: counters["parked"] ?? 0,
                    unreachableAttempts: counters["unreachable"] ?? 0,
                    oldestWaitingAt: (waiting?["oldest"] as Int64?).map(Date.init(millisecondsSince1970:)),
                    reachable: state?["reachable"], since: (state?["since"] as Int64?).map(Date.init(millisecondsSince1970:)),
                    lastError: state?["last_error"], retryAt: retryAt > 0 ? Date(millisecondsSince1970: retryAt) : nil)
            }
        }
    }

    /// Destinations that have waiting or parked entries, with how many: the configured ones and any an
    /// operator renamed or removed since (their entries wait for the name to come back).
    package func destinationsWithEntries() throws(StoreError) -> [String: Int] {
        try file.read("read DICOM outbox destinations") { db in
            var out: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT destination, count(*) AS n FROM entries WHERE state IN ('waiting', 'parked') GROUP BY destination
                """) { out[row["destination"]] = row["n"] }
            return out
        }
    }

    /// Throws unless the queue can be read now.
    package func checkReady() throws(StoreError) {
        _ = try file.read("check DICOM outbox") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM destinations") }
    }

    // MARK: - Rows

    private func settle(_ seqs: [Int64], state: DicomOutboxEntry.State, error: String?, destination: String, counter: String,
                        now: Date) throws(StoreError) {
        try file.writeImmediate("settle DICOM objects") { db in
            for seq in seqs {
                try db.execute(sql: "UPDATE entries SET state = ?, last_error = ?, settled_at = ? WHERE seq = ? AND state = 'waiting'",
                               arguments: [state.rawValue, error.map { String($0.prefix(500)) }, now.millisecondsSince1970, seq])
                try Self.add(db, destination, counter, db.changesCount)
            }
        }
    }

    private static func add(_ db: Database, _ destination: String, _ name: String, _ value: Int) throws {
        guard value != 0 else { return }
        try db.execute(sql: """
            INSERT INTO counters (destination, name, value) VALUES (?, ?, ?)
            ON CONFLICT(destination, name) DO UPDATE SET value = value + excluded.value
            """, arguments: [destination, name, value])
    }

    static func entry(_ row: Row) -> DicomOutboxEntry {
        DicomOutboxEntry(seq: row["seq"], destination: row["destination"], analysisId: row["analysis_id"],
                         organizationId: row["organization_id"], object: DicomOutboxEntry.Object(rawValue: row["object"]) ?? .sr,
                         part: row["part"], sopInstanceUID: row["sop_instance_uid"],
                         state: DicomOutboxEntry.State(rawValue: row["state"]) ?? .waiting, attempts: row["attempts"],
                         enqueuedAt: Date(millisecondsSince1970: row["enqueued_at"]),
                         nextAttemptAt: Date(millisecondsSince1970: row["next_attempt_at"]), lastError: row["last_error"],
                         settledAt: (row["settled_at"] as Int64?).map(Date.init(millisecondsSince1970:)))
    }
}
