import Foundation
import MediscopeSQLite

extension Accounts {
    // MARK: - Sessions

    /// A new session for an enabled user. The token goes in the cookie, the CSRF token in the page;
    /// only their SHA-256 digests are stored. Also prunes expired sessions.
    /// Throws `.notFound` for an unknown user, `.invalid` for a disabled one.
    package func createSession(userId: String) throws(AuthError) -> (token: String, csrfToken: String, session: Session) {
        guard let user = try stores.users.user(id: userId) else { throw AuthError(.notFound, "no such user") }
        if user.disabled { throw AuthError(.invalid, "user is disabled") }
        let token = Tokens.newSecret()
        let csrfToken = Tokens.newSecret()
        let created = now().roundedToMilliseconds
        let session = Session(id: SortableID.next(now: created), userId: userId, createdAt: created, lastSeenAt: created,
                              expiresAt: created.addingTimeInterval(policy.sessionAbsoluteSeconds).roundedToMilliseconds,
                              csrfHash: Tokens.sha256Hex(csrfToken))
        let idleCutoff = Date(millisecondsSince1970: created.millisecondsSince1970 - policy.sessionIdleSeconds.wholeMilliseconds)
        try stores.sessions.deleteExpired(now: created, idleCutoff: idleCutoff)
        try stores.sessions.insert(session, tokenHash: Tokens.sha256Hex(token))
        return (token, csrfToken, session)
    }

    /// The session and its user, or nil when the token is unknown, the session is past its absolute or
    /// idle expiry, or the user is gone or disabled. Records activity at most once per `touchInterval`.
    package func session(token: String) throws(AuthError) -> (Session, User)? {
        guard Tokens.looksLikeSecret(token) else { return nil }
        guard let stored = try stores.sessions.session(tokenHash: Tokens.sha256Hex(token)) else { return nil }
        let user = try stores.users.user(id: stored.userId)
        var session = stored
        let current = now()
        let expired = current >= session.expiresAt
            || current >= session.lastSeenAt.addingTimeInterval(policy.sessionIdleSeconds)
        guard !expired, let user, !user.disabled else {
            // Best effort: a failed clean-up only leaves a row the next createSession prunes.
            _ = try? stores.sessions.delete(sessionId: session.id)
            return nil
        }
        // Touch often enough that a short idle limit (tests, strict sites) still sees activity.
        if current.timeIntervalSince(session.lastSeenAt) >= min(Self.touchInterval, policy.sessionIdleSeconds / 4) {
            let seen = current.roundedToMilliseconds
            if (try? stores.sessions.touch(sessionId: session.id, lastSeenAt: seen)) == true { session.lastSeenAt = seen }
        }
        return (session, user)
    }

    /// Signs out one session. True when it existed.
    @discardableResult
    package func deleteSession(token: String) throws(AuthError) -> Bool {
        guard Tokens.looksLikeSecret(token) else { return false }
        return try stores.sessions.delete(tokenHash: Tokens.sha256Hex(token))
    }

    /// Signs out every session of a user. Returns how many ended.
    @discardableResult
    package func deleteSessions(userId: String) throws(AuthError) -> Int {
        try stores.sessions.deleteAll(userId: userId)
    }

    /// True when `token` is the CSRF token issued with `session` (digests compared in constant time).
    package func verifyCSRF(session: Session, token: String) -> Bool {
        guard !token.isEmpty, token.utf8.count <= 256 else { return false }
        return Tokens.constantTimeEquals(Tokens.sha256Hex(token), session.csrfHash)
    }

    // MARK: - API tokens

    /// A new API token ("msk_" + 32 random bytes, base64url). The token is shown once; only its digest is kept.
    /// Throws `.invalid` for a bad name or a disabled user, `.notFound` for an unknown user. The API makes
    /// tokens only for a caller signed in with a session, never with another token, so no token outlives
    /// the revocation of the one that made it.
    package func createToken(userId: String, name: String) throws(AuthError) -> (token: String, info: APIToken) {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 100, !Self.hasControlCharacters(name) else {
            throw AuthError(.invalid, "token name must be 1...100 printable characters")
        }
        guard let user = try stores.users.user(id: userId) else { throw AuthError(.notFound, "no such user") }
        if user.disabled { throw AuthError(.invalid, "user is disabled") }
        let token = Tokens.newAPIToken()
        let created = now().roundedToMilliseconds
        let info = APIToken(id: SortableID.next(now: created), userId: userId, name: name, createdAt: created,
                            lastUsedAt: nil, revokedAt: nil)
        try stores.apiTokens.insert(info, tokenHash: Tokens.sha256Hex(token))
        return (token, info)
    }

    /// Every token of a user, revoked ones included, oldest first.
    package func tokens(userId: String) throws(AuthError) -> [APIToken] {
        try stores.apiTokens.tokens(userId: userId)
    }

    /// Revokes one of the user's tokens. False when it does not exist, is another user's, or was already revoked.
    @discardableResult
    package func revokeToken(id: String, userId: String) throws(AuthError) -> Bool {
        try stores.apiTokens.revoke(tokenId: id, userId: userId, at: now().roundedToMilliseconds)
    }

    /// The token and its user; nil when the token is unknown or revoked, or the user is gone or disabled.
    /// Records use at most once per `touchInterval`.
    package func user(forToken token: String) throws(AuthError) -> (APIToken, User)? {
        guard Tokens.looksLikeAPIToken(token) else { return nil }
        guard let stored = try stores.apiTokens.token(tokenHash: Tokens.sha256Hex(token)), stored.revokedAt == nil,
              let user = try stores.users.user(id: stored.userId), !user.disabled
        else { return nil }
        var info = stored
        let current = now().roundedToMilliseconds
        if info.lastUsedAt.map({ current.timeIntervalSince($0) >= Self.touchInterval }) ?? true {
            if (try? stores.apiTokens.touch(tokenId: info.id, lastUsedAt: current)) == true { info.lastUsedAt = current }
        }
        return (info, user)
    }
}
