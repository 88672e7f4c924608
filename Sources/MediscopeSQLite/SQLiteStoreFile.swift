import Foundation
import GRDB

/// A failure of a SQLite store, classified so that each store can map it to its own error type.
/// The message carries SQLite's code and message, never statement arguments.
package struct SQLiteFailure: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in the terms a caller can act on.
    package enum Kind: Sendable {
        /// A UNIQUE or PRIMARY KEY constraint refused the write: the thing exists already.
        case duplicate
        /// Another constraint (CHECK, NOT NULL, FOREIGN KEY, a trigger's RAISE) refused the write.
        case constraint
        /// The file system refused: I/O error, disk full, read-only, no permission, folder not creatable.
        case storage
        /// Anything else: busy past the timeout, locked, corrupt, not a database, errors not SQLite's.
        case unavailable
    }

    /// What went wrong.
    package let kind: Kind
    /// "what: SQLite error <code>: <SQLite's message>", or our own text.
    package let message: String
    /// The message.
    package var description: String { message }

    /// Classifies `error`, a GRDB `DatabaseError` or anything else thrown while doing `what`.
    package init(_ error: any Error, _ what: String) {
        message = SQLiteDatabase.describe(error, what)
        guard let error = error as? DatabaseError else {
            kind = .unavailable
            return
        }
        switch error.extendedResultCode {
        case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
            kind = .duplicate
        default:
            switch error.resultCode {
            case .SQLITE_CONSTRAINT: kind = .constraint
            case .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_READONLY, .SQLITE_PERM: kind = .storage
            default: kind = .unavailable
            }
        }
    }

    /// A failure with a message of our own.
    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// One store's SQLite file: created in its folder, opened (see `SQLiteDatabase.open`), migrated, then read
/// and written with every failure turned into the store's own error type `Failure`.
///
/// Errors of type `Failure` thrown inside a read or write body pass through unchanged (and roll the write
/// back); anything else becomes a `SQLiteFailure` handed to the store's mapping.
package struct SQLiteStoreFile<Failure: Error>: Sendable {
    /// The database file's path.
    package let path: String
    private let queue: DatabaseQueue
    private let mapFailure: @Sendable (SQLiteFailure) -> Failure

    /// Creates `directory` if needed and opens and migrates `directory/fileName`. `name` goes into error
    /// messages ("open <name> database"); `prepare` runs on every new connection after the common pragmas.
    package init(directory: URL, fileName: String, name: String, label: String, migrator: DatabaseMigrator,
                prepare: (@Sendable (Database) throws -> Void)? = nil,
                mapFailure: @escaping @Sendable (SQLiteFailure) -> Failure) throws(Failure) {
        self.mapFailure = mapFailure
        let folder = directory.standardizedFileURL.path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw mapFailure(SQLiteFailure(.storage, "cannot create \(name) folder \(folder): \(error.localizedDescription)"))
        }
        path = folder + "/" + fileName
        do {
            queue = try SQLiteDatabase.open(path: path, label: label, prepare: prepare)
        } catch {
            throw mapFailure(SQLiteFailure(error, "open \(name) database"))
        }
        do {
            try SQLiteDatabase.migrate(migrator, queue)
        } catch {
            throw mapFailure(SQLiteFailure(error, "migrate \(name) database"))
        }
    }

    /// Runs `body` in a read transaction (a consistent snapshot).
    package func read<T>(_ what: String, _ body: (Database) throws -> T) throws(Failure) -> T {
        do {
            return try queue.read(body)
        } catch {
            throw failure(error, what)
        }
    }

    /// Runs `body` in a BEGIN IMMEDIATE transaction (the cross-process write lock, taken up front) and commits.
    @discardableResult
    package func writeImmediate<T>(_ what: String, _ body: (Database) throws -> T) throws(Failure) -> T {
        do {
            return try SQLiteDatabase.writeImmediate(queue, body)
        } catch {
            throw failure(error, what)
        }
    }

    /// `error` as the store's error: unchanged when it already is one, else classified and mapped.
    package func failure(_ error: any Error, _ what: String) -> Failure {
        if let error = error as? Failure { return error }
        return mapFailure(SQLiteFailure(error, what))
    }
}
