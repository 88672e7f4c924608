import Foundation
import GRDB
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

/// A fresh folder under the temp directory, removed when the fixture is released.
final class AccountsFolder {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("mediscope-accounts-\(UUID().uuidString)", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

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

    static func store(_ folder: AccountsFolder, clock: AccountsClock = AccountsClock(),
                      policy: AccountPolicy = AccountPolicy()) throws -> Accounts {
        Accounts(stores: try .sqlite(directory: folder.url), policy: policy, now: clock.closure, hasher: fastHasher)
    }
}

extension AuthError {
    /// For `#expect(throws:)` closures: true when `error` is an AuthError of `kind`.
    static func isKind(_ kind: Kind, _ error: any Error) -> Bool {
        (error as? AuthError)?.kind == kind
    }
}
