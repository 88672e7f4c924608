import Foundation
import Glibc
import GRDB

/// How the stores open, migrate and write their SQLite files.
///
/// Every database is shared by several worker processes: WAL lets readers and the single writer proceed
/// together across processes, synchronous=FULL makes a COMMIT durable before it returns, and SQLite's
/// write lock (taken up front with BEGIN IMMEDIATE) is the cross-process lock.
package enum SQLiteDatabase {
    /// Opens (creating it if needed) the database at `path`: WAL, synchronous=FULL, foreign keys on,
    /// `busyTimeout` seconds of waiting for other processes' locks, and statement arguments kept out of
    /// error messages. `prepare` runs on every new connection after those pragmas (further pragmas).
    package static func open(path: String, label: String, busyTimeout: TimeInterval = 5,
                            prepare: (@Sendable (Database) throws -> Void)? = nil) throws -> DatabaseQueue {
        var config = Configuration()
        config.label = label
        config.busyMode = .timeout(busyTimeout)  // other worker processes write too
        config.foreignKeysEnabled = true
        config.publicStatementArguments = false  // arguments hold private data: keep them out of errors
        config.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw DatabaseError(message: "could not switch the database to WAL mode (got \(mode ?? "nil"))")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try prepare?(db)
        }
        restrictFileModes(path: path)
        return try DatabaseQueue(path: path, configuration: config)
    }

    /// The database files hold patient data and password and session hashes: they are the service user's
    /// alone (0600), whatever the umask, and a file an earlier version made 0644 is tightened when opened.
    /// Creates the database file empty if it is missing (SQLite takes an empty file as a new database and
    /// gives its new -wal and -shm files the database file's mode). Failures are left to SQLite's own open,
    /// which reports them; a file of another owner keeps its mode.
    static func restrictFileModes(path: String) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 {
            tighten(fd)
            close(fd)
        }
        for suffix in ["-wal", "-shm"] {
            let companion = Glibc.open(path + suffix, O_RDWR | O_CLOEXEC)
            if companion >= 0 {
                tighten(companion)
                close(companion)
            }
        }
    }

    private static func tighten(_ fd: Int32) {
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & 0o077 != 0 { _ = fchmod(fd, info.st_mode & 0o700) }
    }

    /// Runs `migrator`. Several worker processes may open a fresh database at once: the loser of a race
    /// sees a "table exists" or busy error, after which the winner's migration is visible. So a failure
    /// counts as success when the migrations turn out to be complete, is final for a file that is not a
    /// database or is corrupt, and is otherwise retried (`attempts` tries in all, backing off 20 ms more
    /// each time). Throws the last error.
    package static func migrate(_ migrator: DatabaseMigrator, _ queue: DatabaseQueue, attempts: Int = 8) throws {
        var attempt = 0
        while true {
            do {
                try migrator.migrate(queue)
                return
            } catch {
                if let done = try? queue.read({ try migrator.hasCompletedMigrations($0) }), done { return }
                if let dbError = error as? DatabaseError,
                   dbError.resultCode == .SQLITE_NOTADB || dbError.resultCode == .SQLITE_CORRUPT { throw error }
                attempt += 1
                usleep(UInt32(20_000 * attempt))
                if attempt >= attempts { throw error }
            }
        }
    }

    /// Runs `body` in a BEGIN IMMEDIATE transaction and commits: the write lock is taken up front (waiting
    /// up to the busy timeout), so a read-then-write never fails on a snapshot another process moved past.
    package static func writeImmediate<T>(_ queue: DatabaseQueue, _ body: (Database) throws -> T) throws -> T {
        try queue.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Copies the database `source` is connected to into a new file at `path` (0600, like every database
    /// here) with SQLite's online backup API, all pages in one step, so the copy is one snapshot. `source`
    /// must not be in a write transaction (SQLite answers BUSY then): to hold other writers off, take the
    /// write lock on another connection, as `backup(path:toNewFile:whileLocked:)` does. The copy is one
    /// self-contained file (rollback journal mode, no -wal or -shm beside it; `open` switches it back to
    /// WAL) and is closed when this returns.
    /// - Throws: `SQLiteFailure(.storage)` when `path` exists already; SQLite's error otherwise (a
    ///   partial file may then be left at `path`).
    package static func copy(from source: Database, toNewFile path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw SQLiteFailure(.storage, "\(path) exists already: a copy never overwrites a file")
        }
        restrictFileModes(path: path)
        var config = Configuration()
        config.label = "copy"
        config.publicStatementArguments = false
        let destination = try DatabaseQueue(path: path, configuration: config)
        try destination.writeWithoutTransaction { db in
            try source.backup(to: db)
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
        }
        try destination.close()
    }

    /// Copies the existing database at `path` into a new file at `destination` (see `copy(from:toNewFile:)`)
    /// while one connection holds its write lock (BEGIN IMMEDIATE, waiting up to the busy timeout for
    /// other processes' writes) and a second reads the copy: nothing can commit until the copy is done
    /// and `whileLocked` has run, with the reading connection, on the same state. Readers go on meanwhile.
    /// - Throws: `SQLiteFailure(.storage)` when there is no database at `path` or `destination` exists;
    ///   SQLite's errors; whatever `whileLocked` throws.
    package static func backup(path: String, toNewFile destination: String,
                              whileLocked: (Database) throws -> Void = { _ in }) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SQLiteFailure(.storage, "no database at \(path)")
        }
        let lock = try open(path: path, label: "backup lock")
        let reader = try open(path: path, label: "backup reader")
        try writeImmediate(lock) { _ in
            try reader.read { db in
                try copy(from: db, toNewFile: destination)
                try whileLocked(db)
            }
        }
        try reader.close()
        try lock.close()
    }

    /// "`what`: SQLite error <extended code>: <SQLite's message>" for a GRDB `DatabaseError`, and
    /// "`what`: <error>" for anything else. Never carries statement arguments.
    package static func describe(_ error: any Error, _ what: String) -> String {
        if let error = error as? DatabaseError {
            return "\(what): SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")"
        }
        return "\(what): \(error)"
    }
}
