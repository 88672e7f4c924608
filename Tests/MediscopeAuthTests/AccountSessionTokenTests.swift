import Foundation
import GRDB
import Testing
import TestSupport
@testable import MediscopeAuth

@Suite struct AccountSessionTests {
    private func setUp(_ policy: AccountPolicy = AccountPolicy()) throws -> (TemporaryFolder, AccountsClock, Accounts, User) {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy)
        let user = try AccountsFixtures.clinician(store, "alice")
        return (folder, clock, store, user)
    }

    private static func isBase64URLSecret(_ s: String) -> Bool {
        s.utf8.count == 43 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    @Test func createAndLookUp() throws {
        let (_, clock, store, alice) = try setUp()
        let (token, csrf, session) = try store.createSession(userId: alice.id)
        #expect(Self.isBase64URLSecret(token))
        #expect(Self.isBase64URLSecret(csrf))
        #expect(token != csrf)
        #expect(session.userId == alice.id)
        #expect(session.createdAt == clock.now && session.lastSeenAt == clock.now)
        #expect(session.expiresAt == clock.now.addingTimeInterval(12 * 3600))
        #expect(session.csrfHash == Tokens.sha256Hex(csrf))
        #expect(session.id != token)

        let (found, user) = try #require(try store.session(token: token))
        #expect(found == session)
        #expect(user == alice)
        #expect(try store.session(token: Tokens.newSecret()) == nil)
        #expect(try store.session(token: "") == nil)
        #expect(try store.session(token: csrf) == nil)

        let (other, _, _) = try store.createSession(userId: alice.id)
        #expect(other != token)
        #expect(try store.session(token: other)?.0.id != session.id)
    }

    @Test func idleExpiryAndAtMostOneTouchPerMinute() throws {
        let (_, clock, store, alice) = try setUp()   // idle 30 min
        let (token, _, session) = try store.createSession(userId: alice.id)

        clock.advance(30)
        #expect(try store.session(token: token)?.0.lastSeenAt == session.lastSeenAt)   // no write within 60 s
        clock.advance(29 * 60)                        // 29.5 min idle: still valid, and touched now
        let touched = try #require(try store.session(token: token)).0
        #expect(touched.lastSeenAt == clock.now)
        clock.advance(29 * 60)                        // 29 min since the touch
        #expect(try store.session(token: token) != nil)
        clock.advance(31 * 60)                        // 31 min idle
        #expect(try store.session(token: token) == nil)
        clock.advance(-31 * 60)                       // the expired row was removed, not just hidden
        #expect(try store.session(token: token) == nil)
    }

    @Test func absoluteExpiryEvenWhenActive() throws {
        var policy = AccountPolicy()
        policy.sessionAbsoluteSeconds = 3600
        policy.sessionIdleSeconds = 900
        let (_, clock, store, alice) = try setUp(policy)
        let (token, _, _) = try store.createSession(userId: alice.id)
        for _ in 0..<5 {                              // active every 10 min up to 50 min
            clock.advance(600)
            #expect(try store.session(token: token) != nil)
        }
        clock.advance(599)                            // 59:59
        #expect(try store.session(token: token) != nil)
        clock.advance(1)                              // 60:00
        #expect(try store.session(token: token) == nil)
    }

    @Test func signOutPasswordChangeAndDisableEndSessions() throws {
        let (_, _, store, alice) = try setUp()
        let bob = try AccountsFixtures.clinician(store, "bob")
        let bobToken = try store.createSession(userId: bob.id).token

        let t1 = try store.createSession(userId: alice.id).token
        let t2 = try store.createSession(userId: alice.id).token
        #expect(try store.deleteSession(token: t1))
        #expect(try !store.deleteSession(token: t1))
        #expect(try store.session(token: t1) == nil)
        #expect(try store.session(token: t2) != nil)

        try store.setPassword(username: "alice", password: AccountsFixtures.otherPassword)
        #expect(try store.session(token: t2) == nil)

        let t3 = try store.createSession(userId: alice.id).token
        try store.setDisabled(username: "alice", true)
        #expect(try store.session(token: t3) == nil)
        #expect { try store.createSession(userId: alice.id) } throws: { AuthError.isKind(.invalid, $0) }
        try store.setDisabled(username: "alice", false)
        #expect(try store.session(token: t3) == nil)  // re-enabling does not revive ended sessions

        _ = try store.createSession(userId: alice.id)
        _ = try store.createSession(userId: alice.id)
        #expect(try store.deleteSessions(userId: alice.id) == 2)
        #expect(try store.session(token: bobToken)?.1.id == bob.id)   // other users untouched throughout
        #expect { try store.createSession(userId: "01ARZ3NDEKTSV4RRFFQ69G5FAV") } throws: { AuthError.isKind(.notFound, $0) }
    }

    @Test func csrfTokenVerifies() throws {
        let (_, _, store, alice) = try setUp()
        let (_, csrf, session) = try store.createSession(userId: alice.id)
        let (_, otherCSRF, _) = try store.createSession(userId: alice.id)
        #expect(store.verifyCSRF(session: session, token: csrf))
        #expect(!store.verifyCSRF(session: session, token: otherCSRF))
        #expect(!store.verifyCSRF(session: session, token: ""))
        #expect(!store.verifyCSRF(session: session, token: session.csrfHash))
        #expect(!store.verifyCSRF(session: session, token: String(csrf.dropLast()) + (csrf.hasSuffix("A") ? "B" : "A")))
    }

    @Test func sessionsPruneExpiredRows() throws {
        let (folder, clock, store, alice) = try setUp()
        _ = try store.createSession(userId: alice.id)
        clock.advance(31 * 60)
        _ = try store.createSession(userId: alice.id)   // prunes the idle one
        let count = try folder.rawConnection().read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sessions") }
        #expect(count == 1)
    }
}

@Suite struct AccountTokenTests {
    @Test func createListRevokeAndUse() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let bob = try AccountsFixtures.clinician(store, "bob")

        let (token, info) = try store.createToken(userId: alice.id, name: " laptop ")
        #expect(token.hasPrefix("msk_") && token.utf8.count == 47)
        #expect(info.name == "laptop" && info.userId == alice.id && info.lastUsedAt == nil && info.revokedAt == nil)
        let (token2, info2) = try store.createToken(userId: alice.id, name: "ci")
        #expect(token2 != token)
        #expect(try store.tokens(userId: alice.id).map(\.id) == [info.id, info2.id])
        #expect(try store.tokens(userId: bob.id).isEmpty)

        let (used, user) = try #require(try store.user(forToken: token))
        #expect(user == alice)
        #expect(used.id == info.id && used.lastUsedAt == clock.now)
        #expect(try store.user(forToken: "msk_" + Tokens.newSecret()) == nil)
        #expect(try store.user(forToken: String(token.dropFirst(4))) == nil)

        // last_used_at is written at most once a minute.
        let firstUse = clock.now
        clock.advance(30)
        #expect(try store.user(forToken: token)?.0.lastUsedAt == firstUse)
        clock.advance(31)
        #expect(try store.user(forToken: token)?.0.lastUsedAt == clock.now)
        #expect(try store.tokens(userId: alice.id).first?.lastUsedAt == clock.now)

        #expect(try !store.revokeToken(id: info.id, userId: bob.id))   // not bob's
        #expect(try store.user(forToken: token) != nil)
        #expect(try store.revokeToken(id: info.id, userId: alice.id))
        #expect(try !store.revokeToken(id: info.id, userId: alice.id))
        #expect(try store.user(forToken: token) == nil)
        #expect(try store.user(forToken: token2) != nil)
        #expect(try store.tokens(userId: alice.id).first?.revokedAt == clock.now)

        #expect { try store.createToken(userId: alice.id, name: "  ") } throws: { AuthError.isKind(.invalid, $0) }
        #expect { try store.createToken(userId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", name: "x") } throws: { AuthError.isKind(.notFound, $0) }
    }

    @Test func disablingRevokesTokensAndReEnablingRevivesNone() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let bob = try AccountsFixtures.clinician(store, "bob")
        let (token, _) = try store.createToken(userId: alice.id, name: "cli")
        let (bobToken, _) = try store.createToken(userId: bob.id, name: "cli")
        #expect(try store.user(forToken: token) != nil)
        try store.setDisabled(username: "alice", true)
        #expect(try store.user(forToken: token) == nil)
        #expect(try store.tokens(userId: alice.id).allSatisfy { $0.revokedAt == clock.now }, "revoked, not only refused")
        #expect { try store.createToken(userId: alice.id, name: "while disabled") } throws: { AuthError.isKind(.invalid, $0) }
        clock.advance(60)
        try store.setDisabled(username: "alice", false)
        #expect(try store.user(forToken: token) == nil, "re-enabling revives no token")
        #expect(try store.user(forToken: bobToken)?.1.id == bob.id, "other users untouched")
        // Enabling an enabled user changes nothing: its new token keeps working.
        let (fresh, _) = try store.createToken(userId: alice.id, name: "new")
        try store.setDisabled(username: "alice", false)
        #expect(try store.user(forToken: fresh)?.1.id == alice.id)
    }

    @Test func enablingEndsWhatADisablingLeft() throws {
        // A token a disabling did not revoke (it failed part-way, or it predates revocation on disable)
        // is revoked when the user is enabled again, before the user can use it.
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let (token, _) = try store.createToken(userId: alice.id, name: "cli")
        try store.stores.users.update(userId: alice.id, .disabled(true))   // disabled, nothing else done
        #expect(try store.user(forToken: token) == nil)
        try store.setDisabled(username: "alice", false)
        #expect(try store.user(forToken: token) == nil)
        #expect(try store.tokens(userId: alice.id).first?.revokedAt != nil)
    }

    @Test func passwordResetRevokesEveryTokenAndSession() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let bob = try AccountsFixtures.clinician(store, "bob")
        let (t1, i1) = try store.createToken(userId: alice.id, name: "laptop")
        let (t2, _) = try store.createToken(userId: alice.id, name: "ci")
        let (bobToken, _) = try store.createToken(userId: bob.id, name: "cli")
        let session = try store.createSession(userId: alice.id).token
        clock.advance(10)
        #expect(try store.revokeToken(id: i1.id, userId: alice.id))   // revoked before: keeps its time
        let firstRevocation = clock.now
        clock.advance(10)
        try store.setPassword(username: "alice", password: AccountsFixtures.otherPassword)
        #expect(try store.user(forToken: t1) == nil && store.user(forToken: t2) == nil)
        #expect(try store.session(token: session) == nil)
        #expect(try store.tokens(userId: alice.id).map(\.revokedAt) == [firstRevocation, clock.now])
        #expect(try store.user(forToken: bobToken)?.1.id == bob.id)
        // New credentials work.
        #expect(try store.verifyPassword(username: "alice", password: AccountsFixtures.otherPassword) == alice)
        let (t3, _) = try store.createToken(userId: alice.id, name: "new")
        #expect(try store.user(forToken: t3)?.1.id == alice.id)
    }

    @Test func rawSecretsNeverReachTheFile() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let store = try AccountsFixtures.store(folder)
        let alice = try AccountsFixtures.clinician(store, "alice")
        let (apiToken, _) = try store.createToken(userId: alice.id, name: "cli")
        let (sessionToken, csrf, _) = try store.createSession(userId: alice.id)
        _ = try store.user(forToken: apiToken)
        _ = try store.session(token: sessionToken)

        let bytes = folder.allDatabaseBytes()
        func contains(_ text: String) -> Bool { bytes.range(of: Data(text.utf8)) != nil }
        // Control: what is meant to be stored is found, so the search works.
        #expect(contains(Tokens.sha256Hex(apiToken)))
        #expect(contains(Tokens.sha256Hex(sessionToken)))
        #expect(contains("alice"))
        // The secrets themselves are not.
        #expect(!contains(apiToken))
        #expect(!contains(String(apiToken.dropFirst(4))))
        #expect(!contains(sessionToken))
        #expect(!contains(csrf))
        #expect(!contains(AccountsFixtures.password))
    }
}
