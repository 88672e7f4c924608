import Configuration
import Foundation
import MediscopeAuth
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeOutbox
import MediscopeServer
import MediscopeStore

extension AppConfig {
    /// The analysis store this configuration names: SQLite, or Firestore through `outbox` (required then).
    func analysisStore(outbox: Outbox?, _ purpose: FirestoreSettings.Purpose) throws -> AnalysisStore {
        guard store == .firestore, let firestore else { return try SQLiteAnalysisStore(directory: URL(fileURLWithPath: storeDirectory)) }
        guard let outbox else { throw ServerError("the Firestore store needs this host's outbox") }
        return OutboxAnalysisStore(outbox: outbox, remote: FirestoreAnalysisStore(client: try firestore.client(for: purpose)))
    }

    /// The report versions' store: `reports.sqlite` under `var/store`, or Firestore (written directly:
    /// a clinician's edit must not wait in a queue, and a conflict must be known at once).
    func reportStore(_ purpose: FirestoreSettings.Purpose) throws -> ReportStore {
        guard store == .firestore, let firestore else { return try SQLiteReportStore(directory: URL(fileURLWithPath: storeDirectory)) }
        return FirestoreReportStore(client: try firestore.client(for: purpose))
    }

    /// This host's outbox (store = firestore), nil with SQLite.
    func openOutbox() throws -> Outbox? {
        store == .firestore ? try Outbox(directory: URL(fileURLWithPath: storeDirectory)) : nil
    }

    /// The Firestore settings of `file` and `environment` (as `load` reads them) whatever `store` says: a
    /// deployment still on SQLite names the Firestore it is moving to (`mediscope store migrate`).
    /// `projectId`, when given, replaces `firestore.project.id`.
    /// - Throws: `ServerError` naming what is missing or wrong (no project, an unreadable key file), or
    ///   the configuration file's read or JSON error.
    package static func firestoreSettings(file: String?, projectId: String? = nil,
                                         environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FirestoreSettings {
        let (reader, _) = try reader(file: file, environment: environment)
        let value = { (key: String) in key == "firestore.project.id" && projectId != nil ? projectId : reader.string(forKey: ConfigKey(key)) }
        return try FirestoreSettings.read(value, double: { reader.number(forKey: ConfigKey($0), default: $1) }, environment: environment,
                                          missingProject: "no Firestore project is given (--project)")
    }

    /// The account stores this configuration names: SQLite under `var/store`, or Firestore. With
    /// Firestore, `outbox` given (a worker), users, sessions and tokens are read through short-lived
    /// caches and audit entries are appended through the outbox; without it (a command-line tool),
    /// every call goes to Firestore directly.
    /// - Throws: `AuthError` (SQLite) or `FirestoreError` (an unreadable key file).
    package func accountStores(_ purpose: FirestoreSettings.Purpose, outbox: Outbox? = nil) throws -> AccountStores {
        guard store == .firestore, let firestore else {
            return try AccountStores.sqlite(directory: URL(fileURLWithPath: storeDirectory))
        }
        let client = try firestore.client(for: purpose)
        var stores = AccountStores.firestore(client: client)
        guard let outbox else { return stores }
        stores = stores.cachingReads(ttl: firestore.cacheSeconds, outageGrace: firestore.outageGraceSeconds)
        stores.auditLog = OutboxAuditLog(outbox: outbox, remote: stores.auditLog)
        return stores
    }
}
