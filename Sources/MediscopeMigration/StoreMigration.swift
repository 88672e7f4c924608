import Foundation
import MediscopeAuth
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeStore

/// Copies an embedded SQLite deployment (the store folder, `var/store`: `accounts.sqlite`,
/// `mediscope.sqlite` and its image files) into the Firestore database a client reaches, for
/// `mediscope store migrate --to firestore`.
///
/// - **What**: organisations, users (password hashes and Firebase links included), sessions, API tokens
///   (revoked ones too), the audit log, analyses with their images and their report versions; in that
///   order, accounts before analyses. Sign-in failures (throttling) are not copied: they are forgotten within minutes anyway.
/// - **Idempotent**: a record is looked up first by its id (sessions and tokens by their token hash,
///   audit entries by their migrated id, see `MigratedAuditIDs`); one that is there is counted as
///   "already there" and never written again, so a second run writes nothing. Stored copies are compared
///   where they were read anyway. SQLite is the source of truth until the switch: a user changed there
///   since an earlier run (disabled, role, password) is updated in Firestore, a token revoked there is
///   revoked in Firestore (`Counts.updated`); other differences are reported (`Counts.differing`).
///   Creates are guarded by Firestore (`exists: false`), so nothing is ever overwritten or duplicated.
/// - **Interruptible**: every record is written on its own, complete (an analysis with its images in
///   one commit); an interrupted run leaves whole records, and running again continues.
/// - **Failures**: a record that cannot be copied (an image missing from disk or over Firestore's 1 MiB
///   limit, a username taken by another user in Firestore, a session of a user that failed) is counted
///   as failed and logged by id; the others go on. A side that cannot be reached at all stops the run
///   with `MigrationError`.
/// - **Memory**: SQLite is read in pages of `pageSize` records, and images one analysis at a time.
/// - **Privacy**: `log` gets ids, counts and error kinds only, never patient data or secrets.
///
/// Not thread-safe; one `run` at a time.
package final class StoreMigration {
    /// Test seams; empty in production.
    struct Hooks {
        /// Stops the run (as `MigrationError`) once this many records were written.
        var interruptAfterWrites: Int?
    }

    let storeDirectory: URL
    let dryRun: Bool
    let pageSize: Int
    let log: (String) -> Void
    var hooks = Hooks()

    let users: FirestoreUserStore
    let sessions: FirestoreSessionStore
    let apiTokens: FirestoreAPITokenStore
    let auditLog: FirestoreAuditLogStore
    let analyses: FirestoreAnalysisStore
    let reports: FirestoreReportStore

    /// The counts so far.
    private(set) var report: MigrationReport
    private var writes = 0
    /// Ids of the users that are in Firestore (copied or already there): their sessions and tokens may follow.
    var usersInFirestore = Set<String>()

    /// A migration of the SQLite store folder `storeDirectory` (`AppConfig.storeDirectory`) into the
    /// database `firestore` reaches. `dryRun`: read both sides and count, write nothing. `pageSize`:
    /// records read from SQLite at a time (1...1000). `log` receives a line per record not copied, per
    /// differing copy, and a progress line every 1,000 records of a kind.
    package init(storeDirectory: URL, firestore client: FirestoreClient, dryRun: Bool = false, pageSize: Int = 100,
                log: @escaping (String) -> Void = { _ in }) {
        self.storeDirectory = storeDirectory
        self.dryRun = dryRun
        self.pageSize = min(max(pageSize, 1), 1000)
        self.log = log
        users = FirestoreUserStore(client: client)
        sessions = FirestoreSessionStore(client: client)
        apiTokens = FirestoreAPITokenStore(client: client)
        auditLog = FirestoreAuditLogStore(client: client)
        analyses = FirestoreAnalysisStore(client: client)
        reports = FirestoreReportStore(client: client)
        report = MigrationReport(dryRun: dryRun)
    }

    /// Copies everything (see the type's documentation) and returns the counts; a record that failed is
    /// in `failed`, and `anyFailed` is then true.
    /// - Throws: `MigrationError` (with the counts so far) when the store folder holds no SQLite
    ///   deployment, SQLite cannot be read, or Firestore cannot be reached or refuses the credentials.
    package func run() throws(MigrationError) -> MigrationReport {
        report = MigrationReport(dryRun: dryRun)
        writes = 0
        usersInFirestore = []
        let manager = FileManager.default
        let hasAccounts = manager.fileExists(atPath: storeDirectory.appendingPathComponent(AccountStores.sqliteFileName).path)
        let hasAnalyses = manager.fileExists(atPath: storeDirectory.appendingPathComponent(SQLiteAnalysisStore.databaseFileName).path)
        guard hasAccounts || hasAnalyses else {
            throw stop("no SQLite deployment in \(storeDirectory.path) (neither \(AccountStores.sqliteFileName) "
                       + "nor \(SQLiteAnalysisStore.databaseFileName))")
        }
        if hasAccounts {
            let export = try reading("open \(AccountStores.sqliteFileName)") { () throws(AuthError) in
                try SQLiteAccountsExport(directory: storeDirectory)
            }
            try copyOrganizations(export)
            try copyUsers(export)
            try copySessions(export)
            try copyAPITokens(export)
            try copyAuditLog(export)
        }
        if hasAnalyses {
            // Opening collects orphan images older than an hour, as every server start does.
            let source = try reading("open \(SQLiteAnalysisStore.databaseFileName)") { () throws(StoreError) in
                try SQLiteAnalysisStore(directory: storeDirectory)
            }
            let versions = manager.fileExists(atPath: storeDirectory.appendingPathComponent(SQLiteReportStore.fileName).path)
                ? try reading("open \(SQLiteReportStore.fileName)") { () throws(StoreError) in try SQLiteReportStore(directory: storeDirectory) }
                : nil
            try copyAnalyses(source, reportVersions: versions)
        }
        return report
    }

    // MARK: - Deciding records

    /// What became of one record.
    enum Outcome {
        case copied, alreadyThere
        /// Already there, but not equal to SQLite's copy.
        case differs
        /// Already there, and brought to SQLite's state (what changed is logged by id).
        case updated
        /// Not copied, for this reason (no patient data).
        case failed(String)
    }

    /// Decides one record of `kind` by `body`. A failure of `body` is this record's failure, except an
    /// unavailable backend (down, refused credentials), which stops the run: every record would fail.
    func decide<E: RecordError>(_ kind: MigrationReport.Kind, _ id: String, _ body: () throws(E) -> Outcome) throws(MigrationError) {
        let outcome: Outcome
        do { outcome = try body() } catch {
            if error.stopsMigration { throw stop("\(kind.noun) \(id): \(error)") }
            outcome = .failed("\(error)")
        }
        switch outcome {
        case .copied:
            report[kind].copied += 1
            if !dryRun { writes += 1 }
        case .alreadyThere:
            report[kind].alreadyThere += 1
        case .differs:
            report[kind].alreadyThere += 1
            report[kind].differing += 1
            log("\(kind.noun) \(id): differs from the SQLite copy; Firestore's copy is kept")
        case .updated:
            report[kind].alreadyThere += 1
            report[kind].updated += 1
            if !dryRun { writes += 1 }
            log("\(kind.noun) \(id): changed in SQLite since an earlier run; Firestore's copy updated")
        case .failed(let reason):
            report[kind].failed += 1
            log("\(kind.noun) \(id): not copied: \(reason)")
        }
        if report[kind].total.isMultiple(of: 1000) { log("\(kind.label): \(report[kind].total) so far") }
        if let limit = hooks.interruptAfterWrites, writes >= limit { throw stop("interrupted after \(writes) writes") }
    }

    /// Runs a read that a whole page (or the run) depends on: any failure stops the run.
    func reading<T, E: Error>(_ what: String, _ body: () throws(E) -> T) throws(MigrationError) -> T {
        do { return try body() } catch { throw stop("\(what): \(error)") }
    }

    /// Calls `each` for every row of the pages `page` returns, asking for the page after the last key each time.
    func paged<Row, Key, E: Error>(_ what: String, key: (Row) -> Key, _ page: (Key?) throws(E) -> [Row],
                                   _ each: (Row) throws(MigrationError) -> Void) throws(MigrationError) {
        var after: Key?
        while true {
            let rows = try reading(what) { () throws(E) in try page(after) }
            guard let last = rows.last else { return }
            for row in rows { try each(row) }
            after = key(last)
        }
    }

    func stop(_ message: String) -> MigrationError { MigrationError(message: message, report: report) }
}

/// An error that fails one record, or, when the backend is unavailable, the whole run.
protocol RecordError: Error, CustomStringConvertible {
    var stopsMigration: Bool { get }
}

extension AuthError: RecordError {
    var stopsMigration: Bool { kind == .unavailable }
}

extension StoreError: RecordError {
    var stopsMigration: Bool { kind == .unavailable }
}

extension MigrationReport.Kind {
    /// One record of this kind, for log lines.
    var noun: String {
        switch self {
        case .organizations: "organisation"
        case .users: "user"
        case .sessions: "session"
        case .apiTokens: "API token"
        case .auditEntries: "audit entry"
        case .analyses: "analysis"
        case .reportVersions: "report version"
        }
    }
}
