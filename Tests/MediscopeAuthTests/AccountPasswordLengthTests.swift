import Foundation
import Testing
import TestSupport
@testable import MediscopeAuth

/// Over-long passwords are refused before the user is looked up, so the answer and its cost cannot tell
/// which usernames exist. The seam: a `UserStore` that counts the lookups `Accounts` makes.
@Suite struct AccountPasswordLengthTests {
    /// A `UserStore` over another that counts every read a sign-in could make.
    final class CountingUserStore: UserStore, @unchecked Sendable {
        let base: any UserStore
        private let lock = NSLock()
        private var count = 0
        var lookups: Int { lock.withLock { count } }
        init(_ base: any UserStore) { self.base = base }
        private func counted() { lock.withLock { count += 1 } }

        func saveOrganization(id: String, name: String) throws(AuthError) { try base.saveOrganization(id: id, name: name) }
        func organizationName(id: String) throws(AuthError) -> String? { try base.organizationName(id: id) }
        func insert(_ user: User, passwordHash: String?) throws(AuthError) { try base.insert(user, passwordHash: passwordHash) }
        func user(id: String) throws(AuthError) -> User? { counted(); return try base.user(id: id) }
        func user(username: String) throws(AuthError) -> User? { counted(); return try base.user(username: username) }
        func user(firebaseUID: String) throws(AuthError) -> User? { counted(); return try base.user(firebaseUID: firebaseUID) }
        func credentials(username: String) throws(AuthError) -> (user: User, passwordHash: String?)? {
            counted(); return try base.credentials(username: username)
        }
        func users(organizationId: String?) throws(AuthError) -> [User] { try base.users(organizationId: organizationId) }
        func userCount() throws(AuthError) -> Int { try base.userCount() }
        func update(userId: String, _ change: UserChange) throws(AuthError) -> User { try base.update(userId: userId, change) }
        func checkReady() throws(AuthError) { try base.checkReady() }
    }

    @Test func overLongPasswordsAreRefusedBeforeAnyUserLookup() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        var stores = try AccountStores.sqlite(directory: folder.url)
        let counting = CountingUserStore(stores.users)
        stores.users = counting
        let accounts = Accounts(stores: stores, policy: AccountPolicy(), now: Date.init, hasher: AccountsFixtures.fastHasher)
        try accounts.addUser(username: "alice", password: AccountsFixtures.password, role: .clinician, organizationId: "org-a")

        let overLong = String(repeating: "a", count: PasswordHasher.maximumPasswordBytes + 1)
        var answers: [String] = []
        for username in ["alice", "mallory", "x"] {
            let before = counting.lookups
            do {
                _ = try accounts.verifyPassword(username: username, password: overLong)
                Issue.record("an over-long password for \(username) was verified, not refused")
            } catch {
                #expect(error.kind == .invalid)
                answers.append(error.message)
            }
            #expect(counting.lookups == before, "\(username): refused after a user lookup")
        }
        #expect(Set(answers).count == 1, "the same answer for a known, an unknown and a malformed username")

        // Control: at the limit the password is checked as usual (one lookup) and is simply wrong.
        let before = counting.lookups
        let atLimit = String(repeating: "a", count: PasswordHasher.maximumPasswordBytes)
        #expect(try accounts.verifyPassword(username: "alice", password: atLimit) == nil)
        #expect(counting.lookups == before + 1)
    }
}
