import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `SignInThrottleStore` in Firestore, for several hosts sharing one database (so an attacker's
/// failures count on every host).
///
/// Data model (docs/firestore.md): `signInFailures/{random id}` holds one failure: `account`,
/// `address`, `at` (timestamp). `nthNewestFailure` needs the composite indexes (account, at desc) and
/// (address, at desc) in deploy/firestore.indexes.json; an account-and-address key reads the address's
/// failures (few: a throttled attempt records none) and keeps the account's. `signInKnownAddresses/
/// {addressHash}~{account}` holds `account`, `addressHash` and `at`, the last good sign-in from there.
package final class FirestoreSignInThrottleStore: SignInThrottleStore {
    /// One document per failed sign-in, under a random id.
    package static let signInFailures = "signInFailures"
    /// One document per account and known-good address (hashed).
    package static let signInKnownAddresses = "signInKnownAddresses"

    let fs: FirestoreAccounts

    /// The sign-in failures of the database `client` reaches.
    package init(client: FirestoreClient) { fs = FirestoreAccounts(client: client) }

    package func recordFailure(account: String, address: String, at: Date, forgetUpTo: Date) throws(AuthError) {
        let failure = FirestoreDocument(name: fs.client.name(Self.signInFailures, UUID().uuidString.lowercased()), fields: [
            "account": .string(account), "address": .string(address), "at": .timestamp(at),
        ])
        try setForgetting(failure, precondition: .exists(false), in: Self.signInFailures, forgetUpTo: forgetUpTo,
                          "record sign-in failure")
    }

    package func nthNewestFailure(_ key: SignInThrottleKey, n: Int, after: Date) throws(AuthError) -> Date? {
        guard n >= 1 else { return nil }
        let (field, value, account): (String, String, String?) = switch key {
        case .account(let name): ("account", name, nil)
        case .address(let address): ("address", address, nil)
        case .accountAndAddress(let name, let address): ("address", address, name)
        }
        var q = FirestoreQuery(collectionId: Self.signInFailures, equal: [(field, .string(value))],
                               orderBy: [("at", true)], limit: n)
        q.range = [("at", .greaterThan, .timestamp(after))]
        guard let account else {
            let docs = try fs.query(q, "read sign-in failures")
            guard docs.count == n, let nth = docs.last else { return nil }
            return try StoredFields(nth, "sign-in failure").date("at")
        }
        // The address's failures, newest first, page by page; the account's among them are counted.
        q.orderBy = [("at", true), ("__name__", true)]
        q.limit = FirestoreAccounts.maxWrites
        var found = 0
        while true {
            let page = try fs.query(q, "read sign-in failures")
            for doc in page where doc.fields["account"] == .string(account) {
                found += 1
                if found == n { return try StoredFields(doc, "sign-in failure").date("at") }
            }
            guard page.count == q.limit, let last = page.last else { return nil }
            q.startAfter = [last.fields["at"] ?? .null, .reference(last.name)]
        }
    }

    package func clearFailures(account: String, address: String) throws(AuthError) {
        let q = FirestoreQuery(collectionId: Self.signInFailures, equal: [("account", .string(account)), ("address", .string(address))])
        try fs.deleteAll(try fs.query(q, "clear sign-in failures").map(\.name), "clear sign-in failures")
    }

    package func recordKnownAddress(account: String, addressHash: String, at: Date, forgetUpTo: Date) throws(AuthError) {
        let known = FirestoreDocument(name: knownName(account, addressHash), fields: [
            "account": .string(account), "addressHash": .string(addressHash), "at": .timestamp(at),
        ])
        try setForgetting(known, precondition: nil, in: Self.signInKnownAddresses, forgetUpTo: forgetUpTo,
                          "record known sign-in address")
    }

    package func knownAddressLastSuccess(account: String, addressHash: String) throws(AuthError) -> Date? {
        guard let doc = try fs.get(knownName(account, addressHash), "read known sign-in address") else { return nil }
        return try StoredFields(doc, "known sign-in address").date("at")
    }

    package func checkReady() throws(AuthError) { try fs.checkReady(Self.signInFailures) }

    /// The hash is fixed-length hex, so hash and account side by side name each pair once.
    private func knownName(_ account: String, _ addressHash: String) -> String {
        fs.name(Self.signInKnownAddresses, addressHash + "~" + account)
    }

    /// Writes `doc` and deletes (up to a commit's worth of) the documents of `collection` whose `at` is at
    /// or before `forgetUpTo`, in one commit; a larger backlog shrinks by a commit's worth on every write.
    private func setForgetting(_ doc: FirestoreDocument, precondition: FirestorePrecondition?, in collection: String,
                               forgetUpTo: Date, _ what: String) throws(AuthError) {
        var old = FirestoreQuery(collectionId: collection, orderBy: [("at", false)], limit: FirestoreAccounts.maxWrites)
        old.range = [("at", .lessThanOrEqual, .timestamp(forgetUpTo))]
        let expired = try fs.query(old, what).map(\.name).filter { $0 != doc.name }
        _ = try fs.commit([.set(doc, precondition: precondition)] + expired.map { .delete(name: $0) }, what)
    }
}
