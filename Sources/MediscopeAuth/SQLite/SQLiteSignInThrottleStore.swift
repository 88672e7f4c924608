import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `SignInThrottleStore` over the `sign_in_failures` and `sign_in_known_addresses` tables of accounts.sqlite.
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
        let (condition, values): (String, [String]) = switch key {
        case .account(let name): ("username = ?", [name])
        case .address(let address): ("address = ?", [address])
        case .accountAndAddress(let name, let address): ("username = ? AND address = ?", [name, address])
        }
        let at = try file.read("read sign-in failures") { db in
            try Int64.fetchOne(db, sql: """
                SELECT at FROM sign_in_failures WHERE \(condition) AND at > ?
                ORDER BY at DESC LIMIT 1 OFFSET ?
                """, arguments: StatementArguments(values) + [after.millisecondsSince1970, n - 1])
        }
        return at.map(Date.init(millisecondsSince1970:))
    }

    func clearFailures(account: String, address: String) throws(AuthError) {
        try file.writeImmediate("clear sign-in failures") { db in
            try db.execute(sql: "DELETE FROM sign_in_failures WHERE username = ? AND address = ?", arguments: [account, address])
        }
    }

    func recordKnownAddress(account: String, addressHash: String, at: Date, forgetUpTo: Date) throws(AuthError) {
        try file.writeImmediate("record known sign-in address") { db in
            try db.execute(sql: "DELETE FROM sign_in_known_addresses WHERE last_success_at <= ?",
                           arguments: [forgetUpTo.millisecondsSince1970])
            try db.execute(sql: """
                INSERT INTO sign_in_known_addresses (username, address_hash, last_success_at) VALUES (?, ?, ?)
                ON CONFLICT (username, address_hash) DO UPDATE SET last_success_at = excluded.last_success_at
                """, arguments: [account, addressHash, at.millisecondsSince1970])
        }
    }

    func knownAddressLastSuccess(account: String, addressHash: String) throws(AuthError) -> Date? {
        let at = try file.read("read known sign-in address") { db in
            try Int64.fetchOne(db, sql: "SELECT last_success_at FROM sign_in_known_addresses WHERE username = ? AND address_hash = ?",
                               arguments: [account, addressHash])
        }
        return at.map(Date.init(millisecondsSince1970:))
    }

    func checkReady() throws(AuthError) {
        try SQLiteAccountsFile.checkTables(file, ["sign_in_failures", "sign_in_known_addresses"])
    }
}
