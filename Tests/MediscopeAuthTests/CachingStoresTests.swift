import Foundation
import Testing
import TestSupport
@testable import MediscopeAuth

/// The short-lived read caches: a change made on another host is served stale for at most the TTL.
@Suite struct CachingStoresTests {
    typealias V = ContractValues

    /// Stores on a fresh SQLite file, the cached view of one worker and the plain view of "another host".
    private func fixture(ttl: TimeInterval = 2) throws -> (cached: AccountStores, other: AccountStores, clock: AccountsClock, keep: TemporaryFolder) {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let cached = try AccountStores.sqlite(directory: folder.url).cachingReads(ttl: ttl, now: clock.closure)
        return (cached, try .sqlite(directory: folder.url), clock, folder)
    }

    @Test func disablingElsewhereIsSeenWithinTheTTL() throws {
        let (cached, other, clock, keep) = try fixture(ttl: 2)
        defer { withExtendedLifetime(keep) {} }
        let alice = try V.addUser(other, "alice")
        #expect(try cached.users.user(id: alice.id)?.disabled == false)
        #expect(try cached.users.user(username: "alice")?.disabled == false)
        try other.users.update(userId: alice.id, .disabled(true))

        clock.advance(1.999)
        #expect(try cached.users.user(id: alice.id)?.disabled == false, "cached within the TTL")
        clock.advance(0.001)
        #expect(try cached.users.user(id: alice.id)?.disabled == true, "never served past the TTL")
        #expect(try cached.users.user(username: "alice")?.disabled == true)
        // Credentials are never cached: a password changed elsewhere counts at once.
        try other.users.update(userId: alice.id, .passwordHash("new"))
        #expect(try cached.users.credentials(username: "alice")?.passwordHash == "new")
    }

    @Test func endingASessionElsewhereIsSeenWithinTheTTL() throws {
        let (cached, other, clock, keep) = try fixture(ttl: 3)
        defer { withExtendedLifetime(keep) {} }
        let alice = try V.addUser(other, "alice")
        let session = Session(id: V.id(), userId: alice.id, createdAt: V.time(0), lastSeenAt: V.time(0),
                              expiresAt: V.time(3600), csrfHash: V.hash("csrf"))
        try other.sessions.insert(session, tokenHash: V.hash("t"))
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == session)
        try other.sessions.deleteAll(userId: alice.id)
        clock.advance(2.5)
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == session)
        clock.advance(0.5)
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == nil)
        // Nothing found is not cached: a session made elsewhere is seen at once.
        try other.sessions.insert(session, tokenHash: V.hash("t"))
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == session)
    }

    @Test func writesThroughTheDecoratorTakeEffectAtOnce() throws {
        let (cached, _, _, keep) = try fixture(ttl: 5)
        defer { withExtendedLifetime(keep) {} }
        let alice = try V.addUser(cached, "alice")
        #expect(try cached.users.user(id: alice.id)?.role == .clinician)
        #expect(try cached.users.update(userId: alice.id, .role(.admin)).role == .admin)
        #expect(try cached.users.user(id: alice.id)?.role == .admin)
        #expect(try cached.users.user(username: "alice")?.role == .admin)
        try cached.users.update(userId: alice.id, .firebaseUID("uid-1"))
        #expect(try cached.users.user(firebaseUID: "uid-1")?.id == alice.id)

        let session = Session(id: V.id(), userId: alice.id, createdAt: V.time(0), lastSeenAt: V.time(0),
                              expiresAt: V.time(3600), csrfHash: V.hash("csrf"))
        try cached.sessions.insert(session, tokenHash: V.hash("t"))
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == session)
        #expect(try cached.sessions.touch(sessionId: session.id, lastSeenAt: V.time(60)))
        #expect(try cached.sessions.session(tokenHash: V.hash("t"))?.lastSeenAt == V.time(60))
        #expect(try cached.sessions.delete(sessionId: session.id))
        #expect(try cached.sessions.session(tokenHash: V.hash("t")) == nil)
    }

    @Test func revokingAllTokensThroughTheDecoratorTakesEffectAtOnce() throws {
        let (cached, _, _, keep) = try fixture(ttl: 5)
        defer { withExtendedLifetime(keep) {} }
        let alice = try V.addUser(cached, "alice"), bob = try V.addUser(cached, "bob")
        let mine = APIToken(id: V.id(), userId: alice.id, name: "cli", createdAt: V.time(0), lastUsedAt: nil, revokedAt: nil)
        let bobs = APIToken(id: V.id(), userId: bob.id, name: "cli", createdAt: V.time(0), lastUsedAt: nil, revokedAt: nil)
        try cached.apiTokens.insert(mine, tokenHash: V.hash("a"))
        try cached.apiTokens.insert(bobs, tokenHash: V.hash("b"))
        #expect(try cached.apiTokens.token(tokenHash: V.hash("a"))?.revokedAt == nil)   // cached now
        #expect(try cached.apiTokens.token(tokenHash: V.hash("b"))?.revokedAt == nil)
        #expect(try cached.apiTokens.revokeAll(userId: alice.id, at: V.time(10)) == 1)
        #expect(try cached.apiTokens.token(tokenHash: V.hash("a"))?.revokedAt == V.time(10))
        #expect(try cached.apiTokens.token(tokenHash: V.hash("b"))?.revokedAt == nil)
    }

    @Test func theTTLIsBoundedAndZeroCachesNothing() throws {
        let (cached, other, clock, keep) = try fixture(ttl: 60)   // asks for a minute, gets the 5 s bound
        defer { withExtendedLifetime(keep) {} }
        let alice = try V.addUser(other, "alice")
        _ = try cached.users.user(id: alice.id)
        try other.users.update(userId: alice.id, .disabled(true))
        clock.advance(AccountCache.maxTTL)
        #expect(try cached.users.user(id: alice.id)?.disabled == true)

        let uncached = CachingUserStore(other.users, ttl: 0, now: clock.closure)
        _ = try uncached.user(id: alice.id)
        try other.users.update(userId: alice.id, .disabled(false))
        #expect(try uncached.user(id: alice.id)?.disabled == false)
    }
}
