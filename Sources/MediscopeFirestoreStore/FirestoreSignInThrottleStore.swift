import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `SignInThrottleStore` in Firestore, for several hosts sharing one database (so an attacker's
/// failures count on every host).
///
/// Data model (README.md, "Firestore"): `signInFailures/{random id}` holds one failure: `account`,
/// `address`, `at` (timestamp). `nthNewestFailure` needs the composite indexes (account, at desc) and
/// (address, at desc) in deploy/firestore.indexes.json.
public final class FirestoreSignInThrottleStore: SignInThrottleStore {
    /// One document per failed sign-in, under a random id.
    public static let signInFailures = "signInFailures"

    let fs: FirestoreAccounts

    /// The sign-in failures of the database `client` reaches.
    public init(client: FirestoreClient) { fs = FirestoreAccounts(client: client) }

    public func recordFailure(account: String, address: String, at: Date, forgetUpTo: Date) throws(AuthError) {
        var old = FirestoreQuery(collectionId: Self.signInFailures, orderBy: [("at", false)], limit: FirestoreAccounts.maxWrites)
        old.range = [("at", .lessThanOrEqual, .timestamp(forgetUpTo))]
        let expired = try fs.query(old, "record sign-in failure").map(\.name)
        let failure = FirestoreDocument(name: fs.client.name(Self.signInFailures, UUID().uuidString.lowercased()), fields: [
            "account": .string(account), "address": .string(address), "at": .timestamp(at),
        ])
        // The new failure and (up to a commit's worth of) forgotten ones together; a backlog larger than
        // that shrinks by a commit's worth on every failure recorded.
        _ = try fs.commit([.set(failure, precondition: .exists(false))] + expired.map { .delete(name: $0) }, "record sign-in failure")
    }

    public func nthNewestFailure(_ key: SignInThrottleKey, n: Int, after: Date) throws(AuthError) -> Date? {
        guard n >= 1 else { return nil }
        let (field, value) = switch key {
        case .account(let name): ("account", name)
        case .address(let address): ("address", address)
        }
        var q = FirestoreQuery(collectionId: Self.signInFailures, equal: [(field, .string(value))], orderBy: [("at", true)], limit: n)
        q.range = [("at", .greaterThan, .timestamp(after))]
        let docs = try fs.query(q, "read sign-in failures")
        guard docs.count == n, let nth = docs.last else { return nil }
        return try StoredFields(nth, "sign-in failure").date("at")
    }

    public func clearFailures(account: String) throws(AuthError) {
        let q = FirestoreQuery(collectionId: Self.signInFailures, equal: [("account", .string(account))])
        try fs.deleteAll(try fs.query(q, "clear sign-in failures").map(\.name), "clear sign-in failures")
    }

    public func checkReady() throws(AuthError) { try fs.checkReady(Self.signInFailures) }
}
