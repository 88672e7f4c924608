import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

/// One queued job: what to do (`kind`), to what (`key`, e.g. an analysis id), for which organisation.
package struct Job: Sendable, Equatable {
    package let id: Int64
    package let kind: String
    package let key: String
    package let organizationId: String
    /// Attempts begun so far (counted when claimed).
    package let attempts: Int
    package let enqueuedAt: Date
}

/// What the status page and /api/metrics report of the queue.
package struct JobStats: Sendable, Codable, Equatable {
    /// Waiting (not claimed, or claimed by a process that died: its lease ran out).
    package var queued: Int
    /// Claimed by a live process now.
    package var running: Int
    /// Finished jobs by outcome (e.g. "llm", "template").
    package var done: [String: Int64]
    /// Attempts that failed (and were retried or given up).
    package var failedAttempts: Int64
    /// Token counts reported by the LLM.
    package var promptTokens: Int64
    package var completionTokens: Int64
    /// Finished jobs by time from enqueue to finish: counts per upper bound in seconds, keyed by the
    /// bound as `String(Double)` ("1.0", ..., "inf"; not cumulative), plus the sum.
    package var latencyBuckets: [String: Int64]
    package var latencySumSeconds: Double
}

/// A durable job queue in a SQLite file (`jobs.sqlite`, WAL, synchronous=FULL): jobs survive restarts,
/// and a job is claimed with a lease, so a job whose process died is claimed again when the lease runs
/// out. Finishing is the worker's business to make idempotent (a report draft is written with
/// "version 1 must not exist"): a job is never lost and never completed twice.
///
/// Fairness: `claim` takes the oldest due job of an organisation that has fewer than
/// `maxRunningPerOrganization` jobs running and started none in the last `minSecondsBetweenStarts`.
package final class JobQueue: Sendable {
    package static let fileName = "jobs.sqlite"
    /// Upper bounds (s) of the latency histogram.
    package static let latencyBounds: [Double] = [1, 2, 5, 10, 20, 30, 60, 120, 300]
    let file: SQLiteStoreFile<StoreError>

    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "jobs", label: "mediscope.jobs",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL, key TEXT NOT NULL, organization_id TEXT NOT NULL,
                    enqueued_at INTEGER NOT NULL, not_before INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    owner INTEGER, lease_until INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    UNIQUE (kind, key)
                );
                CREATE TABLE organization_starts (organization_id TEXT NOT NULL PRIMARY KEY, started_at INTEGER NOT NULL);
                CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value REAL NOT NULL);
                """)
        }
        // Counters became per kind ("<kind>:<name>"); before, only report drafts ("report.draft") were counted.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "UPDATE counters SET name = 'report.draft:' || name WHERE instr(name, ':') = 0")
        }
        return migrator
    }

    /// Adds a job unless one of this kind and key waits or runs already. True when added.
    @discardableResult
    package func enqueue(kind: String, key: String, organizationId: String) throws(StoreError) -> Bool {
        try file.writeImmediate("enqueue job") { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO jobs (kind, key, organization_id, enqueued_at) VALUES (?, ?, ?, ?)
                """, arguments: [kind, key, organizationId, Date().millisecondsSince1970])
            return db.changesCount > 0
        }
    }

    /// Whether a job of this kind and key waits or runs.
    package func contains(kind: String, key: String) throws(StoreError) -> Bool {
        try file.read("read jobs") { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM jobs WHERE kind = ? AND key = ?", arguments: [kind, key]) ?? false
        }
    }

    /// Claims the next due job for process `owner` until `now + lease` (s); nil when none may start.
    package func claim(kind: String, owner: Int32, lease: Double, maxRunningPerOrganization: Int, minSecondsBetweenStarts: Double,
                      now: Date = Date()) throws(StoreError) -> Job? {
        let ms = now.millisecondsSince1970
        return try file.writeImmediate("claim job") { db in
            let candidates = try Row.fetchAll(db, sql: """
                SELECT j.* FROM jobs j
                WHERE j.kind = ? AND j.not_before <= ? AND j.lease_until <= ?
                  AND (SELECT count(*) FROM jobs r WHERE r.organization_id = j.organization_id AND r.lease_until > ?) < ?
                  AND coalesce((SELECT started_at FROM organization_starts s WHERE s.organization_id = j.organization_id), 0) <= ?
                ORDER BY j.id LIMIT 1
                """, arguments: [kind, ms, ms, ms, maxRunningPerOrganization, ms - Int64(minSecondsBetweenStarts * 1000)])
            guard let row = candidates.first else { return nil }
            let id: Int64 = row["id"]
            let orgId: String = row["organization_id"]
            try db.execute(sql: "UPDATE jobs SET owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                           arguments: [owner, ms + Int64(lease * 1000), id])
            try db.execute(sql: "INSERT OR REPLACE INTO organization_starts (organization_id, started_at) VALUES (?, ?)",
                           arguments: [orgId, ms])
            return Job(id: id, kind: row["kind"], key: row["key"], organizationId: orgId, attempts: (row["attempts"] as Int) + 1,
                       enqueuedAt: Date(millisecondsSince1970: row["enqueued_at"]))
        }
    }

    /// The job is done (`outcome`, e.g. "llm" or "template"): it leaves the queue and is counted.
    package func finish(_ job: Job, outcome: String, promptTokens: Int = 0, completionTokens: Int = 0, now: Date = Date()) throws(StoreError) {
        let seconds = max(0, now.timeIntervalSince(job.enqueuedAt))
        try file.writeImmediate("finish job") { db in
            try db.execute(sql: "DELETE FROM jobs WHERE id = ?", arguments: [job.id])
            func add(_ name: String, _ value: Double) throws {
                try db.execute(sql: "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                               arguments: [name, value])
            }
            try add(job.kind + ":" + "done.\(outcome)", 1)
            try add(job.kind + ":" + "tokens.prompt", Double(promptTokens))
            try add(job.kind + ":" + "tokens.completion", Double(completionTokens))
            try add(job.kind + ":" + "latency.sum", seconds)
            let bound = Self.latencyBounds.first { seconds <= $0 } ?? .infinity
            try add(job.kind + ":" + "latency.le.\(bound)", 1)
        }
    }

    /// The attempt failed: the job waits until `at`, released for any process, keeping `error` (no data).
    package func retry(_ job: Job, at: Date, error: String) throws(StoreError) {
        try file.writeImmediate("retry job") { db in
            try db.execute(sql: "UPDATE jobs SET owner = NULL, lease_until = 0, not_before = ?, last_error = ? WHERE id = ?",
                           arguments: [at.millisecondsSince1970, String(error.prefix(300)), job.id])
            try db.execute(sql: "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                           arguments: [job.kind + ":failed"])
        }
    }

    /// Counts a failed attempt of a `kind` job that is then finished another way (e.g. the template fallback).
    package func countFailedAttempt(kind: String) throws(StoreError) {
        try file.writeImmediate("count failed attempt") { db in
            try db.execute(sql: "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                           arguments: [kind + ":failed"])
        }
    }

    /// The queue's figures for jobs of `kind` (every kind when nil).
    package func stats(kind: String? = nil, now: Date = Date()) throws(StoreError) -> JobStats {
        let ms = now.millisecondsSince1970
        return try file.read("read job stats") { db in
            let filter = kind == nil ? "" : " AND kind = ?"
            let running = try Int.fetchOne(db, sql: "SELECT count(*) FROM jobs WHERE lease_until > ?" + filter,
                                           arguments: StatementArguments([ms] + (kind.map { [$0] } ?? []))) ?? 0
            let all = try Int.fetchOne(db, sql: "SELECT count(*) FROM jobs WHERE 1" + filter,
                                       arguments: StatementArguments(kind.map { [$0] } ?? [])) ?? 0
            // Counters are kept per kind ("<kind>:done.llm"); without a kind they are summed over all.
            var counters: [String: Double] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, value FROM counters") {
                let full: String = row["name"]
                let parts = full.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, kind == nil || parts[0] == kind else { continue }
                counters[parts[1], default: 0] += row["value"]
            }
            var done: [String: Int64] = [:]
            var buckets: [String: Int64] = [:]
            for (name, value) in counters {
                if name.hasPrefix("done.") { done[String(name.dropFirst(5))] = Int64(value) }
                if name.hasPrefix("latency.le.") { buckets[String(name.dropFirst(11))] = Int64(value) }
            }
            return JobStats(queued: all - running, running: running, done: done, failedAttempts: Int64(counters["failed"] ?? 0),
                            promptTokens: Int64(counters["tokens.prompt"] ?? 0), completionTokens: Int64(counters["tokens.completion"] ?? 0),
                            latencyBuckets: buckets, latencySumSeconds: counters["latency.sum"] ?? 0)
        }
    }
}
