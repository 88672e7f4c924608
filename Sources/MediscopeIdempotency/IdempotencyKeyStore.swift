import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite
import MediscopeStore

/// What `IdempotencyKeyStore.claim` found for a key, and so what the request does.
package enum IdempotencyClaim: Sendable, Equatable {
    /// First use: this process holds the key now; run the request, then `complete` or `release`.
    case new
    /// The process that held the key died while running it: this one holds it now. What that process
    /// made may exist (it may have died after making it): look first, then run as `new`.
    case takenOver
    /// Done before: answer from `result`, what the first request made (e.g. the record's id).
    case done(result: String)
    /// A live process runs it now: 409, try again later.
    case running
    /// The key was used for a request with another fingerprint: 422.
    case mismatch
}

/// Which Idempotency-Keys this host has seen in the last `retention` (24 h), in a SQLite file of its own
/// (`idempotency.sqlite` in the store folder, WAL, synchronous=FULL), shared by every worker process.
///
/// A row per key scope (`IdempotencyKey.scope`): the request's fingerprint, when it came, which process
/// runs it (pid and start time, so a dead one is told from a live one and from a later process with its
/// pid) and since when, and once done what it made. A claim older than `staleAfter` (the request time
/// limit past which the master kills any request, plus a margin) is free to take over whoever holds it:
/// a key is never stuck because its completion or release could not be written. Keys, fingerprints and results are digests and ids: no patient
/// data, and no key as the client wrote it. `claim` decides under SQLite's write lock (BEGIN
/// IMMEDIATE), so of two workers claiming one key at once, one runs it and the other gets `running`.
///
/// What the request made is stored elsewhere (the analysis store, the report store), not in the same
/// transaction as `complete`: a process that dies between the two leaves a row a retry takes over
/// (`takenOver`), and the route then finds what was made (a record under the key's derived id, a
/// report version with the same text by the same author) instead of making it twice.
package final class IdempotencyKeyStore: Sendable {
    package static let fileName = "idempotency.sqlite"
    /// How long a key is remembered (the draft's suggestion, and Stripe's): 24 h.
    package static let defaultRetention: TimeInterval = 86_400

    let file: SQLiteStoreFile<StoreError>
    /// How long a key is remembered.
    package let retention: TimeInterval
    /// How long a claim holds against others, whatever its holder: past it, no request still runs it.
    package let staleAfter: TimeInterval

    package init(directory: URL, retention: TimeInterval = defaultRetention, staleAfter: TimeInterval = 600) throws(StoreError) {
        self.retention = retention
        self.staleAfter = staleAfter
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "idempotency keys",
                                   label: "mediscope.idempotency", migrator: Self.migrator,
                                   mapFailure: SQLiteAnalysisStore.storeError)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE idempotency_keys (
                    scope TEXT NOT NULL PRIMARY KEY,   -- IdempotencyKey.scope: 64 hex digits
                    fingerprint TEXT NOT NULL,         -- RequestFingerprint of the first request
                    created_at INTEGER NOT NULL,       -- ms since the epoch
                    owner_pid INTEGER NOT NULL,        -- the process running it (or that ran it)
                    owner_start INTEGER NOT NULL,      -- its start time, clock ticks after boot
                    claimed_at INTEGER NOT NULL,       -- ms since the epoch, when that process claimed it
                    result TEXT                        -- what it made, once done; NULL while running
                ) WITHOUT ROWID;
                CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
                """)
        }
        return migrator
    }

    /// Claims `scope` for `owner` for a request with `fingerprint`, forgetting keys past `retention` first.
    package func claim(scope: String, fingerprint: String, owner: ProcessIdentity = .current,
                       now: Date = Date()) throws(StoreError) -> IdempotencyClaim {
        let nowMs = now.millisecondsSince1970
        let oldest = nowMs - Int64(retention * 1000)
        return try file.writeImmediate("claim idempotency key") { db in
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE created_at < ?", arguments: [oldest])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM idempotency_keys WHERE scope = ?", arguments: [scope]) else {
                try db.execute(sql: """
                    INSERT INTO idempotency_keys (scope, fingerprint, created_at, owner_pid, owner_start, claimed_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [scope, fingerprint, nowMs, owner.pid, owner.startTicks, nowMs])
                return .new
            }
            guard row["fingerprint"] as String == fingerprint else { return .mismatch }
            if let result = row["result"] as String? { return .done(result: result) }
            let holder = ProcessIdentity(pid: row["owner_pid"], startTicks: row["owner_start"])
            let claimedAt: Int64 = row["claimed_at"]
            // Its holder runs it, unless that is this very process (one process runs one request at a
            // time: a row it holds without a result is one it failed to release), or the claim is older
            // than any request may run.
            if holder != owner, holder.isRunning, nowMs - claimedAt < Int64(staleAfter * 1000) { return .running }
            try db.execute(sql: "UPDATE idempotency_keys SET owner_pid = ?, owner_start = ?, claimed_at = ? WHERE scope = ?",
                           arguments: [owner.pid, owner.startTicks, nowMs, scope])
            return .takenOver
        }
    }

    /// Records what the request under `scope` made: later claims get `done(result:)`.
    package func complete(scope: String, result: String) throws(StoreError) {
        try file.writeImmediate("complete idempotency key") { db in
            try db.execute(sql: "UPDATE idempotency_keys SET result = ? WHERE scope = ?", arguments: [result, scope])
        }
    }

    /// Forgets `scope` if `owner` still holds it unfinished (the request failed: a retry runs it anew).
    package func release(scope: String, owner: ProcessIdentity = .current) throws(StoreError) {
        try file.writeImmediate("release idempotency key") { db in
            try db.execute(sql: """
                DELETE FROM idempotency_keys WHERE scope = ? AND result IS NULL AND owner_pid = ? AND owner_start = ?
                """, arguments: [scope, owner.pid, owner.startTicks])
        }
    }

    /// Keys remembered now (for the status page and tests).
    package func count() throws(StoreError) -> Int {
        try file.read("count idempotency keys") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM idempotency_keys") ?? 0 }
    }
}
