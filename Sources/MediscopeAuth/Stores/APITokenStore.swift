import Foundation

/// Personal API tokens, found by the SHA-256 of the token. See `AccountStores` for what every store
/// promises. Revoked tokens are kept (the owner's list shows them); they are never deleted.
package protocol APITokenStore: Sendable {
    /// Stores `token` under `tokenHash` (lowercase hex SHA-256 of the whole "msk_..." token).
    /// - Throws: `.conflict` when a token has this id or hash already.
    func insert(_ token: APIToken, tokenHash: String) throws(AuthError)

    /// The token stored under `tokenHash`, revoked or not; nil when none.
    func token(tokenHash: String) throws(AuthError) -> APIToken?

    /// Every token of the user, revoked ones included, oldest first (by `createdAt`, then insertion order).
    func tokens(userId: String) throws(AuthError) -> [APIToken]

    /// Sets `revokedAt` on the user's token. False when no token has the id, it is another user's, or it
    /// was revoked already (the first revocation time stays).
    @discardableResult
    func revoke(tokenId: String, userId: String, at: Date) throws(AuthError) -> Bool

    /// Sets `revokedAt` to `at` on every token of the user that is not revoked yet (those revoked already
    /// keep their first revocation time). Returns how many it revoked. A token inserted while this runs
    /// may be missed: `Accounts` calls it only once nothing can make a new token for the user (after a
    /// password reset has ended the user's sessions, or while the user is disabled).
    @discardableResult
    func revokeAll(userId: String, at: Date) throws(AuthError) -> Int

    /// Sets `lastUsedAt` when it is unset or earlier; never moves it back. True when it changed.
    @discardableResult
    func touch(tokenId: String, lastUsedAt: Date) throws(AuthError) -> Bool

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}
