import Foundation
import GRDB
import TestSupport
@testable import MediscopeAuth

/// A clock tests move by hand.
final class AccountsClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date = Date(timeIntervalSince1970: 1_750_000_000)) { current = start }

    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
    var closure: @Sendable () -> Date { { [self] in now } }
}

/// A test's folder seen as an accounts store's: its database file, looked at from outside the store.
extension TemporaryFolder {
    /// The accounts database in this folder, as `AccountStores.sqlite` names it.
    var databasePath: String { url.appendingPathComponent(AccountStores.sqliteFileName).path }

    /// A second, independent connection to the same file (as another process would have).
    func rawConnection() throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(5)
        return try DatabaseQueue(path: databasePath, configuration: config)
    }

    /// The bytes of the database file and its WAL and shared-memory files, concatenated.
    func allDatabaseBytes() -> Data {
        var data = Data()
        for suffix in ["", "-wal", "-shm"] {
            if let bytes = FileManager.default.contents(atPath: databasePath + suffix) { data.append(bytes) }
        }
        return data
    }
}

enum AccountsFixtures {
    /// Cheap argon2id parameters so the suite runs quickly; one test covers the real OWASP parameters.
    static let fastHasher: PasswordHasher = {
        do { return try PasswordHasher(timeCost: 1, memoryKiB: 64, parallelism: 1) } catch { fatalError("\(error)") }
    }()

    static let password = "correct horse battery"
    static let otherPassword = "staple gun lighthouse"

    static func store(_ folder: TemporaryFolder, clock: AccountsClock = AccountsClock(),
                      policy: AccountPolicy = AccountPolicy()) throws -> Accounts {
        Accounts(stores: try .sqlite(directory: folder.url), policy: policy, now: clock.closure, hasher: fastHasher)
    }

    /// A clinician of org-a named `username`, added to `store` with `password`.
    static func clinician(_ store: Accounts, _ username: String) throws -> User {
        try store.addUser(username: username, password: password, role: .clinician, organizationId: "org-a", displayName: nil)
    }
}

extension AuthError {
    /// For `#expect(throws:)` closures: true when `error` is an AuthError of `kind`.
    static func isKind(_ kind: Kind, _ error: any Error) -> Bool {
        (error as? AuthError)?.kind == kind
    }
}
