import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `SignInThrottleStore` over the `sign_in_failures` table of accounts.sqlite.
final class SQLiteSignInThrottleStore: SignInThrottleStore {
    let file: SQLiteStoreFile<AuthError>

    init(file: SQLiteStoreFile<AuthError>) { self.file = file }

    func recordFailure(account: String, address: String, at: Date, forgetUpTo: Date) throws(AuthError) {
        try file.writeImmediate("record sign-in failure") { db in
            try db.execute(sql: "DELETE FROM sign_in_failures WHERE at <= ?", arguments: [forgetUpTo.millisecondsSince1970])
            try db.execute(sql: "INSERT INTO sign_in_failures (username, address, at) VALUES (?, ?, ?)",
                           arguments: [account, address, at.millisecondsSince1970])
        }
    }

    func nthNewestFailure(_ key: SignInThrottleKey, n: Int, after: Date) throws(AuthError) -> Date? {
        guard n >= 1 else { return nil }
        let (column, value) = switch key {
        case .account(let name): ("username", name)
        case .address(let address): ("address", address)
        }
        let at = try file.read("read sign-in failures") { db in
            try Int64.fetchOne(db, sql: """
                SELECT at FROM sign_in_failures WHERE \(column) = ? AND at > ?
                ORDER BY at DESC LIMIT 1 OFFSET ?
                """, arguments: [value, after.millisecondsSince1970, n - 1])
        }
        return at.map(Date.init(millisecondsSince1970:))
    }

    func clearFailures(account: String) throws(AuthError) {
        try file.writeImmediate("clear sign-in failures") { db in
            try db.execute(sql: "DELETE FROM sign_in_failures WHERE username = ?", arguments: [account])
        }
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["sign_in_failures"])
    }
}
