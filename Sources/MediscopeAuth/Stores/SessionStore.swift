import Foundation

/// Browser sessions, found by the SHA-256 of their cookie token. See `AccountStores` for what every
/// store promises. The store keeps sessions; `Accounts` decides when one has expired.
package protocol SessionStore: Sendable {
    /// Stores `session` under `tokenHash` (lowercase hex SHA-256 of the cookie token).
    /// - Throws: `.conflict` when a session has this id or token hash already.
    func insert(_ session: Session, tokenHash: String) throws(AuthError)

    /// The session stored under `tokenHash`, expired or not; nil when none.
    func session(tokenHash: String) throws(AuthError) -> Session?

    /// Moves the session's `lastSeenAt` forward to `lastSeenAt`; never moves it back. True when it moved,
    /// false when it was already at or past that time or the session is gone.
    @discardableResult
    func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool

    /// Deletes the session with this id. True when it existed.
    @discardableResult
    func delete(sessionId: String) throws(AuthError) -> Bool

    /// Deletes the session stored under `tokenHash`. True when it existed.
    @discardableResult
    func delete(tokenHash: String) throws(AuthError) -> Bool

    /// Deletes every session of the user; returns how many there were.
    @discardableResult
    func deleteAll(userId: String) throws(AuthError) -> Int

    /// Deletes every session with `expiresAt <= now` or `lastSeenAt <= idleCutoff`; returns how many.
    @discardableResult
    func deleteExpired(now: Date, idleCutoff: Date) throws(AuthError) -> Int

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}
