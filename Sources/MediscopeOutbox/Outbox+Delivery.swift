import Foundation
import GRDB
import MediscopeEncoding
import MediscopeStore

// The delivery process's side of the queue: the head, attempts, removal, retries, parking, and the
// counters and reachability the status page reports.
extension Outbox {
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
}
