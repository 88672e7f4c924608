import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing
import TestSupport

/// The `SessionStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct SessionStoreContractTests {
    typealias V = ContractValues

    private static func session(_ user: User, at seconds: Double = 0, lasting: Double = 3600) -> Session {
        Session(id: V.id(seconds), userId: user.id, createdAt: V.time(seconds), lastSeenAt: V.time(seconds),
                expiresAt: V.time(seconds + lasting), csrfHash: V.hash("csrf-\(seconds)-\(UUID())"))
    }

    @Test(arguments: AccountBackend.all)
    func insertFindAndConflict(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let sessions = instance.stores.sessions
        try sessions.checkReady()
        let alice = try V.addUser(instance.stores, "alice")
        let s1 = Self.session(alice)
        try sessions.insert(s1, tokenHash: V.hash("t1"))
        #expect(try sessions.session(tokenHash: V.hash("t1")) == s1)
        #expect(try sessions.session(tokenHash: V.hash("t2")) == nil)
        #expect(try instance.secondInstance().sessions.session(tokenHash: V.hash("t1")) == s1)

        #expect { try sessions.insert(Self.session(alice), tokenHash: V.hash("t1")) } throws: { AuthError.isKind(.conflict, $0) }
        var sameId = Self.session(alice)
        sameId.id = s1.id
        #expect { try sessions.insert(sameId, tokenHash: V.hash("t3")) } throws: { AuthError.isKind(.conflict, $0) }
        #expect(try sessions.session(tokenHash: V.hash("t3")) == nil)
    }

    @Test(arguments: AccountBackend.all)
    func touchOnlyMovesForward(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let sessions = instance.stores.sessions
        let s = Self.session(try V.addUser(instance.stores, "alice"))
        try sessions.insert(s, tokenHash: V.hash("t"))
        #expect(try sessions.touch(sessionId: s.id, lastSeenAt: V.time(90)))
        #expect(try sessions.session(tokenHash: V.hash("t"))?.lastSeenAt == V.time(90))
        #expect(try !sessions.touch(sessionId: s.id, lastSeenAt: V.time(90)))
        #expect(try !sessions.touch(sessionId: s.id, lastSeenAt: V.time(30)))
        #expect(try sessions.session(tokenHash: V.hash("t"))?.lastSeenAt == V.time(90))
        #expect(try !sessions.touch(sessionId: V.id(), lastSeenAt: V.time(120)))
    }

    @Test(arguments: AccountBackend.all)
    func deleteByIdTokenAndUser(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let sessions = instance.stores.sessions
        let alice = try V.addUser(instance.stores, "alice"), bob = try V.addUser(instance.stores, "bob")
        let a1 = Self.session(alice), a2 = Self.session(alice), a3 = Self.session(alice), b1 = Self.session(bob)
        for (s, t) in [(a1, "a1"), (a2, "a2"), (a3, "a3"), (b1, "b1")] { try sessions.insert(s, tokenHash: V.hash(t)) }

        #expect(try sessions.delete(sessionId: a1.id))
        #expect(try !sessions.delete(sessionId: a1.id))
        #expect(try sessions.session(tokenHash: V.hash("a1")) == nil)
        #expect(try sessions.delete(tokenHash: V.hash("a2")))
        #expect(try !sessions.delete(tokenHash: V.hash("a2")))
        #expect(try sessions.deleteAll(userId: alice.id) == 1)
        #expect(try sessions.deleteAll(userId: alice.id) == 0)
        #expect(try sessions.session(tokenHash: V.hash("b1")) == b1)
    }

    @Test(arguments: AccountBackend.all)
    func deleteExpiredUsesInclusiveCutoffs(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let sessions = instance.stores.sessions
        let alice = try V.addUser(instance.stores, "alice")
        var pastAbsolute = Self.session(alice, at: 0, lasting: 100)       // expires at 100
        pastAbsolute.lastSeenAt = V.time(95)                              // active until just before
        let idle = Self.session(alice, at: 10, lasting: 10_000)           // last seen at 10
        let fresh = Self.session(alice, at: 50, lasting: 10_000)          // last seen at 50
        for (s, t) in [(pastAbsolute, "x"), (idle, "i"), (fresh, "f")] { try sessions.insert(s, tokenHash: V.hash(t)) }
        #expect(try sessions.deleteExpired(now: V.time(99), idleCutoff: V.time(9)) == 0)
        #expect(try sessions.deleteExpired(now: V.time(100), idleCutoff: V.time(10)) == 2)
        #expect(try sessions.session(tokenHash: V.hash("x")) == nil)
        #expect(try sessions.session(tokenHash: V.hash("i")) == nil)
        #expect(try sessions.session(tokenHash: V.hash("f")) == fresh)
    }
}
