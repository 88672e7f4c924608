import Configuration
import Foundation
import MediscopeAuth
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeOutbox
import MediscopeServer
import MediscopeStore

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
