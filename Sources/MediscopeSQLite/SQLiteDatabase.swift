import Foundation
import Glibc
import GRDB

/// How the stores open, migrate and write their SQLite files.
///
/// Every database is shared by several worker processes: WAL lets readers and the single writer proceed
/// together across processes, synchronous=FULL makes a COMMIT durable before it returns, and SQLite's
/// write lock (taken up front with BEGIN IMMEDIATE) is the cross-process lock.
public enum SQLiteDatabase {
    /// Opens (creating it if needed) the database at `path`: WAL, synchronous=FULL, foreign keys on,
    /// `busyTimeout` seconds of waiting for other processes' locks, and statement arguments kept out of
    /// error messages. `prepare` runs on every new connection after those pragmas (further pragmas).
    public static func open(path: String, label: String, busyTimeout: TimeInterval = 5,
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
    public static func migrate(_ migrator: DatabaseMigrator, _ queue: DatabaseQueue, attempts: Int = 8) throws {
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
    public static func writeImmediate<T>(_ queue: DatabaseQueue, _ body: (Database) throws -> T) throws -> T {
        try queue.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// "`what`: SQLite error <extended code>: <SQLite's message>" for a GRDB `DatabaseError`, and
    /// "`what`: <error>" for anything else. Never carries statement arguments.
    public static func describe(_ error: any Error, _ what: String) -> String {
        if let error = error as? DatabaseError {
            return "\(what): SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")"
        }
        return "\(what): \(error)"
    }
}
