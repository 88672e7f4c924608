import Configuration
import Foundation
import MediscopeAuth
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeOutbox
import MediscopeServer
import MediscopeStore

/// Where analyses, accounts and the audit log live.
package enum StoreBackend: String, Sendable {
    /// Embedded SQLite under `var/store` (one host; the default).
    case sqlite
    /// Google Cloud Firestore, written through a local outbox (several hosts).
    case firestore
}

/// How to reach Firestore (`store` = firestore). From the configuration (`firestore.*`, MEDISCOPE_FIRESTORE_*)
/// and, as Google's client libraries read them, `GOOGLE_APPLICATION_CREDENTIALS` and `FIRESTORE_EMULATOR_HOST`.
package struct FirestoreSettings: Sendable {
    /// The Google Cloud project (`firestore.project.id`, MEDISCOPE_FIRESTORE_PROJECT_ID); required.
    package var projectId: String
    /// The database (`firestore.database.id`), "(default)" unless set.
    package var databaseId: String
    /// host:port of the Firestore emulator (FIRESTORE_EMULATOR_HOST): plain HTTP, `Bearer owner`, no key.
    package var emulatorHost: String?
    /// A service-account JSON key (`firestore.credentials.file`, else GOOGLE_APPLICATION_CREDENTIALS);
    /// nil: the Compute Engine metadata server's token.
    package var credentialsFile: String?
    /// The metadata server's token URL (`firestore.metadata.url`; Google's unless set).
    package var metadataURL: URL
    /// How long a worker may reuse a user or session it read, seconds (`firestore.cache.seconds`, 0...5).
    package var cacheSeconds: Double
    /// While Firestore cannot be reached, how long a user or session verified before stays accepted,
    /// seconds (`firestore.outage.grace.seconds`, 0...3600; 0: refuse at once).
    package var outageGraceSeconds: Double

    /// Reads the settings; throws `ServerError` naming what is missing or wrong (`missingProject` starts
    /// the message when no project is set).
    static func read(_ reader: (String) -> String?, double: (String, Double) -> Double, environment: [String: String],
                     missingProject: String = "store is firestore but no project is set") throws -> FirestoreSettings {
        guard let project = reader("firestore.project.id"), !project.isEmpty else {
            throw ServerError("\(missingProject): MEDISCOPE_FIRESTORE_PROJECT_ID (or firestore.project_id in the JSON config)")
        }
        guard project.utf8.allSatisfy({ $0 == 45 || (48...57).contains($0) || (97...122).contains($0) }) else {
            throw ServerError("firestore project id \(project) must be lowercase letters, digits and hyphens")
        }
        let metadata = reader("firestore.metadata.url") ?? MetadataServerCredentials.defaultURL.absoluteString
        guard let metadataURL = URL(string: metadata), metadataURL.scheme != nil else { throw ServerError("firestore.metadata.url is not a URL") }
        let cache = double("firestore.cache.seconds", 2)
        guard (0...5).contains(cache) else { throw ServerError("firestore.cache.seconds must be 0 to 5") }
        let grace = double("firestore.outage.grace.seconds", 300)
        guard (0...3600).contains(grace) else { throw ServerError("firestore.outage.grace.seconds must be 0 to 3600") }
        let emulator = environment["FIRESTORE_EMULATOR_HOST"].flatMap { $0.isEmpty ? nil : $0 }
        let credentials = reader("firestore.credentials.file") ?? environment["GOOGLE_APPLICATION_CREDENTIALS"].flatMap { $0.isEmpty ? nil : $0 }
        if emulator == nil, let credentials, !FileManager.default.isReadableFile(atPath: credentials) {
            throw ServerError("the Firestore credentials file \(credentials) cannot be read")
        }
        return FirestoreSettings(projectId: project, databaseId: reader("firestore.database.id") ?? "(default)", emulatorHost: emulator,
                                 credentialsFile: credentials, metadataURL: metadataURL, cacheSeconds: cache, outageGraceSeconds: grace)
    }

    /// What a client is for: request paths answer within the io pool's limit; the delivery loop
    /// retries by itself (the outbox's back-off), so its client tries each call once.
    package enum Purpose: Sendable { case requests, delivery, tool }

    /// A client for `purpose`. Throws `FirestoreError` when the key file is unreadable or not a
    /// service-account key (the key itself never reaches the message).
    package func client(for purpose: Purpose) throws(FirestoreError) -> FirestoreClient {
        let (base, _) = FirestoreConfiguration.fromEnvironment(
            projectId: projectId, environment: emulatorHost.map { ["FIRESTORE_EMULATOR_HOST": $0] } ?? [:])
        var configuration = base
        configuration.databaseId = databaseId
        switch purpose {
        // A request waits at most about 2 x 3 s for one read; the caches' outage breaker makes that one
        // wait per worker per few seconds while Firestore does not answer.
        case .requests: configuration.maxAttempts = 2; configuration.callTimeout = 3; configuration.connectTimeout = 1.5
        case .delivery: configuration.maxAttempts = 1; configuration.callTimeout = 20; configuration.connectTimeout = 3
        case .tool: configuration.maxAttempts = 5
        }
        let credentials: AccessTokenProvider
        if emulatorHost != nil {
            credentials = EmulatorCredentials()
        } else if let credentialsFile {
            guard let key = FileManager.default.contents(atPath: credentialsFile) else {
                throw FirestoreError(.unauthenticated, "the credentials file \(credentialsFile) cannot be read")
            }
            credentials = try ServiceAccountCredentials(keyFileJSON: Array(key))
        } else {
            credentials = MetadataServerCredentials(url: metadataURL)
        }
        return FirestoreClient(configuration: configuration, credentials: credentials)
    }
}

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
