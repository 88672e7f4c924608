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
