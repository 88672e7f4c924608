import FirestoreTestKit
import Foundation
import MediscopeAuth
import MediscopeFirestoreStore
import Testing
import TestSupport

/// A storage backend the contract suites run against. Every suite in this folder is written against the
/// store protocols only; a new backend (Firestore) joins by adding itself to `all`, e.g. only when its
/// emulator is configured, and then has to pass every contract test unchanged. The suites carry the
/// `.firestoreEmulator` trait, which starts the real emulator beside them.
struct AccountBackend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Fresh, empty stores on a backend of their own.
    let make: @Sendable () throws -> BackendInstance

    var testDescription: String { name }

    static let all: [AccountBackend] = [.sqlite, .firestore]

    static let sqlite = AccountBackend(name: "SQLite") {
        let folder = TemporaryFolder("mediscope-accounts")
        return BackendInstance(stores: try .sqlite(directory: folder.url), keepAlive: folder) {
            try .sqlite(directory: folder.url)
        }
    }

    /// The real Firestore emulator the suite runs beside; a project of its own per instance (an empty
    /// database), and a second client on the same project for `secondInstance()`.
    static let firestore = AccountBackend(name: "Firestore (emulator)") {
        let emulator = try SharedEmulator.get()
        let project = "accounts-\(UUID().uuidString.prefix(8).lowercased())"
        return BackendInstance(stores: .firestore(client: emulator.client(projectId: project)), keepAlive: emulator) {
            .firestore(client: emulator.client(projectId: project))
        }
    }
}

/// One backend's stores, plus a way to reach the same data as another process or host would.
final class BackendInstance {
    let stores: AccountStores
    private let keepAlive: AnyObject
    private let connect: () throws -> AccountStores

    init(stores: AccountStores, keepAlive: AnyObject, connect: @escaping () throws -> AccountStores) {
        self.stores = stores
        self.keepAlive = keepAlive
        self.connect = connect
    }

    /// A second, independent instance of the stores over the same data.
    func secondInstance() throws -> AccountStores { try connect() }
}
