import Foundation
import Testing
@testable import MediscopeAuth

/// While the shared backend does not answer, a cached credential is served without asking again for the
/// breaker's window, and touches are skipped: one timeout per window, not one per request.
@Suite struct OutageBreakerTests {
    /// A session store that counts its calls and fails as unavailable while `down`.
    final class FlakySessions: SessionStore, @unchecked Sendable {
        var down = false
        var lookups = 0
        var touches = 0
        let session: Session
        init(_ session: Session) { self.session = session }
        func insert(_ session: Session, tokenHash: String) throws(AuthError) {}
        func session(tokenHash: String) throws(AuthError) -> Session? {
            lookups += 1
            if down { throw AuthError(.unavailable, "timed out") }
            return session
        }
        func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool {
            touches += 1
            if down { throw AuthError(.unavailable, "timed out") }
            return true
        }
        func delete(sessionId: String) throws(AuthError) -> Bool { false }
        func delete(tokenHash: String) throws(AuthError) -> Bool { false }
        func deleteAll(userId: String) throws(AuthError) -> Int { 0 }
        func deleteExpired(now: Date, idleCutoff: Date) throws(AuthError) -> Int { 0 }
        func checkReady() throws(AuthError) {}
    }

    final class Clock: @unchecked Sendable {
        var now = Date(timeIntervalSince1970: 1_800_000_000)
    }

    @Test func aDownBackendIsAskedOncePerWindow() throws {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let base = FlakySessions(Session(id: "S1", userId: "U1", createdAt: t0, lastSeenAt: t0, expiresAt: t0.addingTimeInterval(3600),
                                         csrfHash: String(repeating: "a", count: 64)))
        let clock = Clock()
        let breaker = OutageBreaker(window: 5)
        let cache = CachingSessionStore(base, ttl: 2, outageGrace: 300, breaker: breaker, now: { clock.now })
        #expect(try cache.session(tokenHash: "h") != nil)
        #expect(base.lookups == 1)

        base.down = true
        clock.now = clock.now.addingTimeInterval(3)                  // past the TTL: asks, fails, serves the cached copy
        #expect(try cache.session(tokenHash: "h")?.id == "S1")
        #expect(base.lookups == 2 && breaker.isOpen(at: clock.now))
        for step in 1...4 {                                            // within the window: not asked again
            clock.now = clock.now.addingTimeInterval(1)
            #expect(try cache.session(tokenHash: "h")?.id == "S1", "step \(step)")
        }
        #expect(base.lookups == 2, "no call while the breaker is open")
        #expect(throws: AuthError.self) { try cache.touch(sessionId: "S1", lastSeenAt: clock.now) }
        #expect(base.touches == 0, "a touch is skipped, not waited for")

        clock.now = clock.now.addingTimeInterval(2)                  // the window has passed: asks again
        #expect(try cache.session(tokenHash: "h")?.id == "S1")
        #expect(base.lookups == 3)
        base.down = false
        clock.now = clock.now.addingTimeInterval(6)
        #expect(try cache.session(tokenHash: "h") != nil && base.lookups == 4 && !breaker.isOpen(at: clock.now), "back: closed")
        #expect(try cache.touch(sessionId: "S1", lastSeenAt: clock.now) && base.touches == 1)
    }

    @Test func withoutGraceNothingIsServedStale() throws {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let base = FlakySessions(Session(id: "S1", userId: "U1", createdAt: t0, lastSeenAt: t0, expiresAt: t0.addingTimeInterval(3600),
                                         csrfHash: String(repeating: "a", count: 64)))
        let clock = Clock()
        let cache = CachingSessionStore(base, ttl: 2, outageGrace: 0, breaker: OutageBreaker(window: 5), now: { clock.now })
        _ = try cache.session(tokenHash: "h")
        base.down = true
        clock.now = clock.now.addingTimeInterval(3)
        #expect(throws: AuthError.self) { try cache.session(tokenHash: "h") }
    }
}
