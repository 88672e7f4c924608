import Foundation

/// Read caches in front of a shared (remote) backend, so a worker does not ask Firestore for the same
/// user or session on every request. An answer is served from the cache for at most `ttl` seconds after
/// the read that fetched it began, so a change made elsewhere (another host disabling a user, ending a
/// session) takes effect here within `ttl`. Writes through a decorator drop its own entries at once.
/// Only answers that found something are cached: a lookup that found nothing asks again next time.
package enum AccountCache {
    /// The default time an answer is served from a cache, seconds.
    package static let defaultTTL: TimeInterval = 2
    /// The longest time accepted; docs/security-and-audit.md states this bound for revocation and disabling.
    package static let maxTTL: TimeInterval = 5
    /// The longest outage grace accepted (`CachingUserStore` and the others' `outageGrace`), seconds.
    package static let maxOutageGrace: TimeInterval = 3600
    /// Entries kept per cache before it is emptied (bounds memory against many distinct keys).
    package static let capacity = 4096
}

/// Process-wide memory of the shared backend being unavailable: for `window` seconds after a lookup
/// failed as `.unavailable`, the caches serve what they hold (within their outage grace) without
/// asking again, and `touch` calls are skipped, so a Firestore that accepts connections but does not
/// answer costs one timeout per window, not one per lookup.
package final class OutageBreaker: @unchecked Sendable {
    /// The one breaker of this process (all caches share it: one outage, one window).
    package static let shared = OutageBreaker()
    /// Seconds after the last failure during which the backend is not asked for cached answers.
    package let window: TimeInterval
    private let lock = NSLock()
    private var lastFailure: Date?

    package init(window: TimeInterval = 5) { self.window = window }

    /// True while the last unavailable failure is less than `window` seconds before `now`.
    package func isOpen(at now: Date) -> Bool {
        lock.withLock { lastFailure.map { now.timeIntervalSince($0) < window } ?? false }
    }

    func recordFailure(at now: Date) { lock.withLock { lastFailure = now } }
    func recordSuccess() { lock.withLock { lastFailure = nil } }
}

/// Answers by key, each until `fetched + ttl`; past that, and only while the backend is unavailable
/// (`AuthError.unavailable`), until `fetched + ttl + grace`. Thread-safe: workers are single-threaded,
/// but the decorators are `Sendable` and may be shared.
final class ShortLivedCache<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    private let ttl: TimeInterval
    private let grace: TimeInterval
    let now: @Sendable () -> Date
    let breaker: OutageBreaker
    private let lock = NSLock()
    private var entries: [Key: (value: Value, fetched: Date)] = [:]

    init(ttl: TimeInterval, grace: TimeInterval = 0, breaker: OutageBreaker = .shared, now: @escaping @Sendable () -> Date) {
        self.ttl = min(max(ttl, 0), AccountCache.maxTTL)
        self.grace = min(max(grace, 0), AccountCache.maxOutageGrace)
        self.breaker = breaker
        self.now = now
    }

    /// The cached value, or `fetch()`'s, cached when non-nil. The clock is read before fetching, so an
    /// answer is never served longer than `ttl` after the backend could have given it, except that an
    /// unavailable backend gets the last answer for up to `grace` more.
    func value<E: Error>(_ key: Key, fetch: () throws(E) -> Value?) throws(E) -> Value? {
        let started = now()
        let hit = lock.withLock { entries[key] }
        if let hit, started < hit.fetched.addingTimeInterval(ttl) { return hit.value }
        let usableInOutage = hit.map { grace > 0 && started < $0.fetched.addingTimeInterval(ttl + grace) } ?? false
        if let hit, usableInOutage, breaker.isOpen(at: started) { return hit.value }
        let value: Value?
        do { value = try fetch() } catch {
            guard (error as? AuthError)?.kind == .unavailable else { throw error }
            breaker.recordFailure(at: now())
            if let hit, usableInOutage { return hit.value }
            throw error
        }
        breaker.recordSuccess()
        guard let value else {
            lock.withLock { _ = entries.removeValue(forKey: key) }
            return nil
        }
        guard ttl > 0 else { return value }
        lock.withLock {
            if entries.count >= AccountCache.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (value, started)
        }
        return value
    }

    /// True while the breaker is open and an outage grace applies: a touch (a timestamp, not a decision)
    /// is skipped rather than waiting for a backend that does not answer.
    var skipsWrites: Bool { grace > 0 && breaker.isOpen(at: now()) }

    /// Makes every entry whose key or value `matches` stale: the next read asks the backend, but the
    /// entry still serves the outage grace (a touch changed a timestamp, not whether it is valid).
    func expire(where matches: (Key, Value) -> Bool) {
        let stale = now().addingTimeInterval(-ttl)
        lock.withLock {
            for (key, entry) in entries where matches(key, entry.value) && entry.fetched > stale {
                entries[key] = (entry.value, stale)
            }
        }
    }

    /// Drops every entry whose key or value `matches`.
    func removeAll(where matches: (Key, Value) -> Bool) {
        lock.withLock { entries = entries.filter { !matches($0.key, $0.value.value) } }
    }
}

/// A `UserStore` that serves `user(id:)`, `user(username:)` and `user(firebaseUID:)` from a short-lived
/// cache (see `AccountCache`); everything else, `credentials(username:)` included, goes to `base`.
package final class CachingUserStore: UserStore {
    enum Key: Hashable, Sendable { case id(String), username(String), firebaseUID(String) }

    /// The store that is asked on a miss and written through.
    package let base: any UserStore
    private let cache: ShortLivedCache<Key, User>

    /// Caches answers of `base` for `ttl` seconds (clamped to 0...`AccountCache.maxTTL`; 0 caches
    /// nothing), and while `base` is unavailable for `outageGrace` more (0...`AccountCache.maxOutageGrace`),
    /// timed by `now`.
    package init(_ base: any UserStore, ttl: TimeInterval = AccountCache.defaultTTL, outageGrace: TimeInterval = 0,
                breaker: OutageBreaker = .shared, now: @escaping @Sendable () -> Date = Date.init) {
        self.base = base
        cache = ShortLivedCache(ttl: ttl, grace: outageGrace, breaker: breaker, now: now)
    }

    package func saveOrganization(id: String, name: String) throws(AuthError) { try base.saveOrganization(id: id, name: name) }
    package func organizationName(id: String) throws(AuthError) -> String? { try base.organizationName(id: id) }

    package func insert(_ user: User, passwordHash: String?) throws(AuthError) {
        defer { forget(user) }
        try base.insert(user, passwordHash: passwordHash)
    }

    package func user(id: String) throws(AuthError) -> User? {
        try cache.value(.id(id)) { () throws(AuthError) in try base.user(id: id) }
    }

    package func user(username: String) throws(AuthError) -> User? {
        try cache.value(.username(username)) { () throws(AuthError) in try base.user(username: username) }
    }

    package func user(firebaseUID: String) throws(AuthError) -> User? {
        try cache.value(.firebaseUID(firebaseUID)) { () throws(AuthError) in try base.user(firebaseUID: firebaseUID) }
    }

    package func credentials(username: String) throws(AuthError) -> (user: User, passwordHash: String?)? {
        try base.credentials(username: username)
    }

    package func users(organizationId: String?) throws(AuthError) -> [User] { try base.users(organizationId: organizationId) }
    package func userCount() throws(AuthError) -> Int { try base.userCount() }

    @discardableResult
    package func update(userId: String, _ change: UserChange) throws(AuthError) -> User {
        // Dropped whether or not the change applied: a failed write may have written after all.
        defer { cache.removeAll { key, user in key == .id(userId) || user.id == userId } }
        return try base.update(userId: userId, change)
    }

    package func checkReady() throws(AuthError) { try base.checkReady() }

    private func forget(_ user: User) {
        cache.removeAll { key, cached in
            cached.id == user.id || key == .id(user.id) || key == .username(user.username)
                || user.firebaseUID.map { key == .firebaseUID($0) } == true
        }
    }
}

/// A `SessionStore` that serves `session(tokenHash:)` from a short-lived cache (see `AccountCache`);
/// every write goes to `base` and drops the sessions it touches from the cache.
package final class CachingSessionStore: SessionStore {
    /// The store that is asked on a miss and written through.
    package let base: any SessionStore
    private let cache: ShortLivedCache<String, Session>

    /// Caches answers of `base` for `ttl` seconds (clamped to 0...`AccountCache.maxTTL`; 0 caches
    /// nothing), and while `base` is unavailable for `outageGrace` more, timed by `now`.
    package init(_ base: any SessionStore, ttl: TimeInterval = AccountCache.defaultTTL, outageGrace: TimeInterval = 0,
                breaker: OutageBreaker = .shared, now: @escaping @Sendable () -> Date = Date.init) {
        self.base = base
        cache = ShortLivedCache(ttl: ttl, grace: outageGrace, breaker: breaker, now: now)
    }

    package func insert(_ session: Session, tokenHash: String) throws(AuthError) {
        defer { cache.removeAll { hash, cached in hash == tokenHash || cached.id == session.id } }
        try base.insert(session, tokenHash: tokenHash)
    }

    package func session(tokenHash: String) throws(AuthError) -> Session? {
        try cache.value(tokenHash) { () throws(AuthError) in try base.session(tokenHash: tokenHash) }
    }

    /// A touch (failed or not) keeps the cached session, stale: the next read asks again, but an older
    /// `lastSeenAt` only makes the idle check stricter, and during an outage it keeps the session usable.
    @discardableResult
    package func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool {
        if cache.skipsWrites { throw AuthError(.unavailable, "touch skipped: the account store is unavailable") }
        let moved = try base.touch(sessionId: sessionId, lastSeenAt: lastSeenAt)
        cache.expire { $1.id == sessionId }
        return moved
    }

    @discardableResult
    package func delete(sessionId: String) throws(AuthError) -> Bool {
        defer { cache.removeAll { $1.id == sessionId } }
        return try base.delete(sessionId: sessionId)
    }

    @discardableResult
    package func delete(tokenHash: String) throws(AuthError) -> Bool {
        defer { cache.removeAll { hash, _ in hash == tokenHash } }
        return try base.delete(tokenHash: tokenHash)
    }

    @discardableResult
    package func deleteAll(userId: String) throws(AuthError) -> Int {
        defer { cache.removeAll { $1.userId == userId } }
        return try base.deleteAll(userId: userId)
    }

    @discardableResult
    package func deleteExpired(now: Date, idleCutoff: Date) throws(AuthError) -> Int {
        defer { cache.removeAll { _, _ in true } }
        return try base.deleteExpired(now: now, idleCutoff: idleCutoff)
    }

    package func checkReady() throws(AuthError) { try base.checkReady() }
}

/// An `APITokenStore` that serves `token(tokenHash:)` from a short-lived cache (see `AccountCache`);
/// every write goes to `base` and drops the tokens it touches from the cache.
package final class CachingAPITokenStore: APITokenStore {
    /// The store that is asked on a miss and written through.
    package let base: any APITokenStore
    private let cache: ShortLivedCache<String, APIToken>

    /// Caches answers of `base` for `ttl` seconds, and while `base` is unavailable for `outageGrace`
    /// more, timed by `now` (same bounds as `CachingUserStore`).
    package init(_ base: any APITokenStore, ttl: TimeInterval = AccountCache.defaultTTL, outageGrace: TimeInterval = 0,
                breaker: OutageBreaker = .shared, now: @escaping @Sendable () -> Date = Date.init) {
        self.base = base
        cache = ShortLivedCache(ttl: ttl, grace: outageGrace, breaker: breaker, now: now)
    }

    package func insert(_ token: APIToken, tokenHash: String) throws(AuthError) {
        defer { cache.removeAll { hash, cached in hash == tokenHash || cached.id == token.id } }
        try base.insert(token, tokenHash: tokenHash)
    }

    package func token(tokenHash: String) throws(AuthError) -> APIToken? {
        try cache.value(tokenHash) { () throws(AuthError) in try base.token(tokenHash: tokenHash) }
    }

    package func tokens(userId: String) throws(AuthError) -> [APIToken] { try base.tokens(userId: userId) }

    @discardableResult
    package func revoke(tokenId: String, userId: String, at: Date) throws(AuthError) -> Bool {
        defer { cache.removeAll { $1.id == tokenId } }
        return try base.revoke(tokenId: tokenId, userId: userId, at: at)
    }

    @discardableResult
    package func revokeAll(userId: String, at: Date) throws(AuthError) -> Int {
        defer { cache.removeAll { $1.userId == userId } }
        return try base.revokeAll(userId: userId, at: at)
    }

    /// Like `CachingSessionStore.touch`: a failed touch keeps the cached token.
    @discardableResult
    package func touch(tokenId: String, lastUsedAt: Date) throws(AuthError) -> Bool {
        if cache.skipsWrites { throw AuthError(.unavailable, "touch skipped: the account store is unavailable") }
        let moved = try base.touch(tokenId: tokenId, lastUsedAt: lastUsedAt)
        cache.expire { $1.id == tokenId }
        return moved
    }

    package func checkReady() throws(AuthError) { try base.checkReady() }
}

extension AccountStores {
    /// These stores with `users`, `sessions` and `apiTokens` behind short-lived read caches (see
    /// `AccountCache`), for a backend shared by several hosts. Revocation and disabling take effect
    /// within `ttl`; while the backend is unavailable, what was verified within `ttl + outageGrace` is
    /// still accepted (a change made elsewhere during an outage takes effect when it ends).
    package func cachingReads(ttl: TimeInterval = AccountCache.defaultTTL, outageGrace: TimeInterval = 0,
                             now: @escaping @Sendable () -> Date = Date.init) -> AccountStores {
        var stores = self
        stores.users = CachingUserStore(users, ttl: ttl, outageGrace: outageGrace, now: now)
        stores.sessions = CachingSessionStore(sessions, ttl: ttl, outageGrace: outageGrace, now: now)
        stores.apiTokens = CachingAPITokenStore(apiTokens, ttl: ttl, outageGrace: outageGrace, now: now)
        return stores
    }
}
