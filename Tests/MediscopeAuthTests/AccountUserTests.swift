import Foundation
import GRDB
import Testing
import TestSupport
@testable import MediscopeAuth

@Suite struct AccountUserTests {
    @Test func addListDisableRoleAndPassword() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        #expect(try store.userCount() == 0)

        let alice = try store.addUser(username: "  Alice@Example.org ", password: AccountsFixtures.password,
                                      role: .clinician, organizationId: "org-a", displayName: " Dr Alice ")
        #expect(alice.username == "alice@example.org")
        #expect(alice.displayName == "Dr Alice")
        #expect(alice.id.count == 26)
        #expect(alice.createdAt == clock.now)
        #expect(!alice.disabled && alice.firebaseUID == nil)
        let bob = try store.addUser(username: "bob", password: AccountsFixtures.password, role: .admin,
                                    organizationId: "org-a", displayName: nil)
        _ = try store.addUser(username: "carol", password: AccountsFixtures.password, role: .clinician,
                              organizationId: "org-b", displayName: "")

        #expect(try store.userCount() == 3)
        #expect(try store.listUsers(organizationId: "org-a").map(\.username) == ["alice@example.org", "bob"])
        #expect(try store.listUsers(organizationId: "org-b").map(\.username) == ["carol"])
        #expect(try store.listUsers(organizationId: nil).count == 3)
        #expect(try store.listUsers(organizationId: "org-z").isEmpty)
        #expect(try store.user(id: alice.id) == alice)
        #expect(try store.user(username: "ALICE@example.org") == alice)
        #expect(try store.user(username: "nobody") == nil)
        #expect(try store.user(id: bob.id)?.role == .admin)

        let promoted = try store.setRole(username: "alice@example.org", .admin)
        #expect(promoted.role == .admin)
        #expect(try store.user(id: alice.id)?.role == .admin)

        try store.setDisabled(username: "bob", true)
        #expect(try store.user(id: bob.id)?.disabled == true)
        try store.setDisabled(username: "bob", false)
        #expect(try store.user(id: bob.id)?.disabled == false)

        try store.setPassword(username: "Alice@example.org", password: AccountsFixtures.otherPassword)
        #expect(try store.verifyPassword(username: "alice@example.org", password: AccountsFixtures.password) == nil)
        #expect(try store.verifyPassword(username: "alice@example.org", password: AccountsFixtures.otherPassword)?.id == alice.id)

        // Organisations were created on demand.
        let orgs = try folder.rawConnection().read { db in try String.fetchAll(db, sql: "SELECT id FROM organizations ORDER BY id") }
        #expect(orgs == ["org-a", "org-b"])
    }

    @Test func duplicateWeakAndInvalidInputAreRefused() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        try store.addUser(username: "alice", password: AccountsFixtures.password, role: .clinician,
                          organizationId: "org-a", displayName: nil)

        #expect { try store.addUser(username: "ALICE", password: AccountsFixtures.password, role: .admin,
                                    organizationId: "org-b", displayName: nil) } throws: { AuthError.isKind(.conflict, $0) }
        #expect { try store.addUser(username: "dave", password: "short", role: .clinician,
                                    organizationId: "org-a", displayName: nil) } throws: { AuthError.isKind(.weakPassword, $0) }
        #expect { try store.addUser(username: "dave", password: String(repeating: "a", count: 20), role: .clinician,
                                    organizationId: "org-a", displayName: nil) } throws: { AuthError.isKind(.weakPassword, $0) }
        #expect { try store.addUser(username: "da", password: AccountsFixtures.password, role: .clinician,
                                    organizationId: "org-a", displayName: nil) } throws: { AuthError.isKind(.invalid, $0) }
        #expect { try store.addUser(username: "dave smith", password: AccountsFixtures.password, role: .clinician,
                                    organizationId: "org-a", displayName: nil) } throws: { AuthError.isKind(.invalid, $0) }
        #expect { try store.addUser(username: "dave", password: AccountsFixtures.password, role: .clinician,
                                    organizationId: "", displayName: nil) } throws: { AuthError.isKind(.invalid, $0) }
        #expect { try store.setPassword(username: "alice", password: "tiny") } throws: { AuthError.isKind(.weakPassword, $0) }
        #expect { try store.setPassword(username: "nobody", password: AccountsFixtures.password) } throws: {
            AuthError.isKind(.notFound, $0)
        }
        #expect { try store.setRole(username: "nobody", .admin) } throws: { AuthError.isKind(.notFound, $0) }
        #expect { try store.setDisabled(username: "nobody", true) } throws: { AuthError.isKind(.notFound, $0) }
        // A policy with a longer minimum applies it.
        var strict = AccountPolicy()
        strict.minimumPasswordLength = 30
        let strictStore = try AccountsFixtures.store(folder, policy: strict)
        #expect { try strictStore.setPassword(username: "alice", password: AccountsFixtures.otherPassword) } throws: {
            AuthError.isKind(.weakPassword, $0)
        }
        // Nothing was written by the refused calls; the old password still works.
        #expect(try store.userCount() == 1)
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password) != nil)
    }

    @Test func verifyPasswordRightWrongUnknownDisabled() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        let alice = try AccountsFixtures.clinician(store, "alice")
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password) == alice)
        #expect(try store.verifyPassword(username: " ALICE ", password: AccountsFixtures.password) == alice)
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password + " ") == nil)
        #expect(try store.verifyPassword(username: "alice", password: "") == nil)
        #expect(try store.verifyPassword(username: "mallory", password: AccountsFixtures.password) == nil)
        #expect(try store.verifyPassword(username: "x", password: AccountsFixtures.password) == nil)
        try store.setDisabled(username: "alice", true)
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password) == nil)
        try store.setDisabled(username: "alice", false)
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password) == alice)
    }

    @Test func argon2idHashesUseTheOWASPParametersAndARandomSalt() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = Accounts(stores: try .sqlite(directory: folder.url))   // the production hasher
        let prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
        #expect(PasswordHasher.owasp.prefix == prefix)
        #expect(PasswordHasher.owaspDummyHash.hasPrefix(prefix))

        let start = ContinuousClock.now
        let alice = try AccountsFixtures.clinician(store, "alice")
        let elapsed = ContinuousClock.now - start
        print("argon2id (m=19456 KiB, t=2, p=1): addUser incl. one hash took \(elapsed)")

        let stored = try folder.rawConnection().read { db in
            try String.fetchOne(db, sql: "SELECT password_hash FROM users WHERE id = ?", arguments: [alice.id])
        }
        let hash = try #require(stored)
        #expect(hash.hasPrefix(prefix))
        #expect(!hash.contains(AccountsFixtures.password))
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.password) == alice)
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.otherPassword) == nil)

        let first = try PasswordHasher.owasp.hash(AccountsFixtures.password)
        let second = try PasswordHasher.owasp.hash(AccountsFixtures.password)
        #expect(first != second)
        #expect(first.hasPrefix(prefix) && second.hasPrefix(prefix))
        #expect(PasswordHasher.owasp.verify(AccountsFixtures.password, encoded: second))
        #expect(!PasswordHasher.owasp.verify(AccountsFixtures.password, encoded: "$argon2id$v=19$garbage"))
        #expect(!PasswordHasher.owasp.verify(AccountsFixtures.password, encoded: PasswordHasher.owaspDummyHash))
    }

    @Test func firebaseLinkIsUniqueAndNeverSilentlyReplaced() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let bob = try AccountsFixtures.clinician(store, "bob")
        #expect(try store.user(firebaseUID: "uid-1") == nil)
        let linked = try store.linkFirebase(uid: "uid-1", userId: alice.id)
        #expect(linked.firebaseUID == "uid-1")
        #expect(try store.user(firebaseUID: "uid-1")?.id == alice.id)
        #expect(try store.linkFirebase(uid: "uid-1", userId: alice.id).firebaseUID == "uid-1")  // idempotent
        #expect { try store.linkFirebase(uid: "uid-1", userId: bob.id) } throws: { AuthError.isKind(.conflict, $0) }
        #expect { try store.linkFirebase(uid: "uid-2", userId: alice.id) } throws: { AuthError.isKind(.conflict, $0) }
        #expect { try store.linkFirebase(uid: "uid-3", userId: "01ARZ3NDEKTSV4RRFFQ69G5FAV") } throws: {
            AuthError.isKind(.notFound, $0)
        }
        #expect(try store.user(id: bob.id)?.firebaseUID == nil)
    }

    @Test func organisationsAreCreatedAndRenamed() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        try store.ensureOrganization(id: "org-a", name: "Clinic A")
        try store.ensureOrganization(id: "org-a", name: "Clinic A")
        try store.addUser(username: "alice", password: AccountsFixtures.password, role: .clinician,
                          organizationId: "org-a", displayName: nil)
        let db = try folder.rawConnection()
        #expect(try db.read { try String.fetchOne($0, sql: "SELECT name FROM organizations WHERE id = 'org-a'") } == "Clinic A")
        try store.ensureOrganization(id: "org-a", name: "Clinic A (north)")
        #expect(try db.read { try String.fetchOne($0, sql: "SELECT name FROM organizations WHERE id = 'org-a'") } == "Clinic A (north)")
        #expect(try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM organizations") } == 1)
        #expect(try store.organizationName(id: "org-a") == "Clinic A (north)")
        #expect(try store.organizationName(id: "org-none") == nil)
        #expect { try store.ensureOrganization(id: "org-b", name: "  ") } throws: { AuthError.isKind(.invalid, $0) }
    }

    @Test func reopeningKeepsDataAndReportsReady() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let alice: User
        do {
            let store = try AccountsFixtures.store(folder)
            try store.checkReady()
            alice = try store.addUser(username: "alice", password: AccountsFixtures.password, role: .admin,
                                      organizationId: "org-a", displayName: "A")
        }
        let reopened = try AccountsFixtures.store(folder)
        try reopened.checkReady()
        #expect(try reopened.user(id: alice.id) == alice)
        let mode = try folder.rawConnection().read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode?.lowercased() == "wal")
    }

    @Test func twoStoresOnOneFolderSeeEachOthersWrites() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let a = try AccountsFixtures.store(folder, clock: clock)
        let b = try AccountsFixtures.store(folder, clock: clock)
        let alice = try a.addUser(username: "alice", password: AccountsFixtures.password, role: .clinician,
                                  organizationId: "org-a", displayName: nil)
        #expect(try b.user(username: "alice") == alice)
        #expect(try b.verifyPassword(username: "alice", password: AccountsFixtures.password) == alice)
        #expect { try b.addUser(username: "alice", password: AccountsFixtures.password, role: .clinician,
                                organizationId: "org-a", displayName: nil) } throws: { AuthError.isKind(.conflict, $0) }

        let (token, _, _) = try a.createSession(userId: alice.id)
        #expect(try b.session(token: token)?.1.id == alice.id)
        try b.setDisabled(username: "alice", true)
        #expect(try a.session(token: token) == nil)
        try b.setDisabled(username: "alice", false)

        let (apiToken, info) = try b.createToken(userId: alice.id, name: "cli")
        #expect(try a.user(forToken: apiToken)?.1.id == alice.id)
        #expect(try a.revokeToken(id: info.id, userId: alice.id))
        #expect(try b.user(forToken: apiToken) == nil)

        let id = try b.audit(AuditEntry(time: clock.now, actorUserId: alice.id, actorUsername: "alice", organizationId: "org-a",
                                        action: "session.create", recordId: nil, address: "10.0.0.1", outcome: "success"))
        #expect(try a.auditEntries(AuditFilter()).map(\.id) == [id])

        try a.recordSignInFailure(username: "alice", address: "10.0.0.9")
        let rows = try folder.rawConnection().read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sign_in_failures") }
        #expect(rows == 1)
    }
}
