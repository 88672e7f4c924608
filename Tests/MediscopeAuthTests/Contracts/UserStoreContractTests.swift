import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing
import TestSupport

/// The `UserStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct UserStoreContractTests {
    typealias V = ContractValues

    @Test(arguments: AccountBackend.all)
    func insertAndLookUp(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let users = instance.stores.users
        try users.checkReady()
        #expect(try users.userCount() == 0)
        var carol = V.user("carol", org: "org-b", at: 2)
        carol.displayName = "Dr Carol"
        let bob = V.user("bob", role: .admin, at: 1)
        let alice = V.user("alice@example.org")
        try users.insert(carol, passwordHash: "hash-c")
        try users.insert(bob, passwordHash: "hash-b")
        try users.insert(alice, passwordHash: nil)

        #expect(try users.userCount() == 3)
        #expect(try users.user(id: carol.id) == carol)
        #expect(try users.user(username: "bob") == bob)
        #expect(try users.user(username: "BOB") == nil)           // normalising is the caller's job
        #expect(try users.user(id: V.id()) == nil)
        #expect(try users.user(firebaseUID: "uid-1") == nil)
        #expect(try users.credentials(username: "bob")?.passwordHash == "hash-b")
        #expect(try users.credentials(username: "bob")?.user == bob)
        let noPassword = try #require(try users.credentials(username: "alice@example.org"))
        #expect(noPassword.user == alice && noPassword.passwordHash == nil)
        #expect(try users.credentials(username: "nobody") == nil)

        #expect(try users.users(organizationId: nil).map(\.username) == ["alice@example.org", "bob", "carol"])
        #expect(try users.users(organizationId: "org-a").map(\.username) == ["alice@example.org", "bob"])
        #expect(try users.users(organizationId: "org-z").isEmpty)
        // Organisations are created on demand, named by their id.
        #expect(try users.organizationName(id: "org-b") == "org-b")
    }

    @Test(arguments: AccountBackend.all)
    func takenNamesAndIdsConflictAndWriteNothing(_ backend: AccountBackend) throws {
        let users = try backend.make().stores.users
        let alice = V.user("alice")
        try users.insert(alice, passwordHash: "h")
        #expect { try users.insert(V.user("alice", org: "org-new"), passwordHash: "h") } throws: { AuthError.isKind(.conflict, $0) }
        var sameId = V.user("alice2")
        sameId.id = alice.id
        #expect { try users.insert(sameId, passwordHash: "h") } throws: { AuthError.isKind(.conflict, $0) }
        #expect(try users.userCount() == 1)
        #expect(try users.user(id: alice.id) == alice)
        #expect(try users.organizationName(id: "org-new") == nil)
    }

    @Test(arguments: AccountBackend.all)
    func organisationsAreSavedAndRenamed(_ backend: AccountBackend) throws {
        let users = try backend.make().stores.users
        #expect(try users.organizationName(id: "org-a") == nil)
        try users.saveOrganization(id: "org-a", name: "Clinic A")
        try users.saveOrganization(id: "org-a", name: "Clinic A")
        try users.insert(V.user("alice"), passwordHash: "h")   // an existing organisation keeps its name
        #expect(try users.organizationName(id: "org-a") == "Clinic A")
        try users.saveOrganization(id: "org-a", name: "Clinic A (north)")
        #expect(try users.organizationName(id: "org-a") == "Clinic A (north)")
    }

    @Test(arguments: AccountBackend.all)
    func updatesApplyAndPersist(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let users = instance.stores.users
        let alice = V.user("alice")
        try users.insert(alice, passwordHash: "old")

        #expect(try users.update(userId: alice.id, .role(.admin)).role == .admin)
        #expect(try users.update(userId: alice.id, .disabled(true)).disabled)
        let changed = try users.update(userId: alice.id, .passwordHash("new"))
        #expect(changed.disabled && changed.role == .admin)
        #expect(try users.credentials(username: "alice")?.passwordHash == "new")
        #expect(try users.update(userId: alice.id, .disabled(false)).disabled == false)
        // Another instance (process, host) sees the result.
        #expect(try instance.secondInstance().users.user(id: alice.id) == changed.with(disabled: false))

        for change in [UserChange.role(.admin), .disabled(true), .passwordHash("x"), .firebaseUID("uid")] {
            #expect { try users.update(userId: V.id(), change) } throws: { AuthError.isKind(.notFound, $0) }
        }
    }

    @Test(arguments: AccountBackend.all)
    func firebaseLinkIsUniqueAndNeverSilentlyReplaced(_ backend: AccountBackend) throws {
        let users = try backend.make().stores.users
        let alice = V.user("alice"), bob = V.user("bob")
        try users.insert(alice, passwordHash: "h")
        try users.insert(bob, passwordHash: "h")
        #expect(try users.update(userId: alice.id, .firebaseUID("uid-1")).firebaseUID == "uid-1")
        #expect(try users.user(firebaseUID: "uid-1")?.id == alice.id)
        #expect(try users.update(userId: alice.id, .firebaseUID("uid-1")).firebaseUID == "uid-1")   // idempotent
        #expect { try users.update(userId: bob.id, .firebaseUID("uid-1")) } throws: { AuthError.isKind(.conflict, $0) }
        #expect { try users.update(userId: alice.id, .firebaseUID("uid-2")) } throws: { AuthError.isKind(.conflict, $0) }
        #expect(try users.user(id: bob.id)?.firebaseUID == nil)
        #expect(try users.user(firebaseUID: "uid-2") == nil)
    }

    @Test(arguments: AccountBackend.all)
    func writesAreVisibleToASecondInstance(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let other = try instance.secondInstance()
        let alice = V.user("alice")
        try instance.stores.users.insert(alice, passwordHash: "h")
        #expect(try other.users.user(username: "alice") == alice)
        #expect { try other.users.insert(V.user("alice"), passwordHash: "h") } throws: { AuthError.isKind(.conflict, $0) }
        try other.users.saveOrganization(id: "org-a", name: "Clinic A")
        #expect(try instance.stores.users.organizationName(id: "org-a") == "Clinic A")
    }
}

private extension User {
    func with(disabled: Bool) -> User {
        var copy = self
        copy.disabled = disabled
        return copy
    }
}
