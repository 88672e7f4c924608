import Foundation
import MediscopeEncoding
import MediscopeSQLite

/// The accounts module's rules over its stores: username and password policy, argon2id hashing, minting
/// and hashing tokens, session expiry, CSRF checks, sign-in throttling and audit bounds. Every backend
/// gets these rules from here; a store only keeps what it is given (see `AccountStores`).
///
/// Every expiry and window is measured with the injected `now` clock, so tests can move time. Steps that
/// touch two stores (a password change and the end of the user's sessions) are ordered so that a failure
/// between them leaves the safe state: the new password is in force before the old sessions are ended,
/// and a disabled user's sessions and tokens are refused even before they are deleted or revoked.
package final class Accounts: Sendable {
    /// last_seen_at / last_used_at are written at most this often per session or token (no write per request).
    package static let touchInterval: TimeInterval = 60

    /// The stores this service keeps its data in.
    package let stores: AccountStores
    /// Session lifetimes, password minimum and throttling limits.
    package let policy: AccountPolicy
    let hasher: PasswordHasher
    let now: @Sendable () -> Date

    /// Accounts over `stores` with the production argon2id parameters.
    package convenience init(stores: AccountStores, policy: AccountPolicy = .init(),
                            now: @escaping @Sendable () -> Date = Date.init) {
        self.init(stores: stores, policy: policy, now: now, hasher: .owasp)
    }

    /// `hasher` lets tests use cheap argon2 parameters; production always uses `.owasp`.
    init(stores: AccountStores, policy: AccountPolicy, now: @escaping @Sendable () -> Date, hasher: PasswordHasher) {
        self.stores = stores
        self.policy = policy
        self.now = now
        self.hasher = hasher
    }

    /// Throws `.unavailable` unless every store can serve now.
    package func checkReady() throws(AuthError) {
        try stores.users.checkReady()
        try stores.sessions.checkReady()
        try stores.apiTokens.checkReady()
        try stores.signInThrottle.checkReady()
        try stores.auditLog.checkReady()
    }

    // MARK: - Organisations

    /// Creates the organisation, or renames it when it exists under another name.
    package func ensureOrganization(id: String, name: String) throws(AuthError) {
        try Self.validateOrganizationId(id)
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 200, !Self.hasControlCharacters(name) else {
            throw AuthError(.invalid, "organisation name must be 1...200 printable characters")
        }
        try stores.users.saveOrganization(id: id, name: name)
    }

    /// The organisation's display name; nil when there is no such organisation.
    package func organizationName(id: String) throws(AuthError) -> String? {
        try stores.users.organizationName(id: id)
    }

    // MARK: - Users

    /// Adds an enabled user with a password. Throws `.invalid` (username, organisation id or display
    /// name), `.weakPassword`, or `.conflict` when the username is taken.
    @discardableResult
    package func addUser(username: String, password: String, role: Role, organizationId: String,
                        displayName: String? = nil) throws(AuthError) -> User {
        guard let name = Self.normalizedUsername(username) else {
            throw AuthError(.invalid, "username must be 3...64 characters of a-z 0-9 . _ @ -")
        }
        try Self.validateOrganizationId(organizationId)
        let display = try Self.normalizedDisplayName(displayName)
        try checkPasswordPolicy(password)
        // Cheap checks first: the slow hash is computed only for a name that looks free.
        if try stores.users.user(username: name) != nil { throw AuthError(.conflict, "username is taken") }
        let hash = try hasher.hash(password)
        let created = now().roundedToMilliseconds
        let user = User(id: SortableID.next(now: created), username: name, displayName: display, role: role,
                        organizationId: organizationId, disabled: false, createdAt: created, firebaseUID: nil)
        try stores.users.insert(user, passwordHash: hash)
        return user
    }

    /// Sets a new password, then ends every session of the user and revokes every API token (a reset is
    /// what an admin does when a credential may be known to someone else). In that order: once the new
    /// password is in force and the sessions are gone nothing can make a new token, so the revocation
    /// misses none. A failure part-way throws, and calling again finishes the job.
    @discardableResult
    package func setPassword(username: String, password: String) throws(AuthError) -> User {
        try checkPasswordPolicy(password)
        let existing = try existingUser(username: username)
        let hash = try hasher.hash(password)
        let user = try stores.users.update(userId: existing.id, .passwordHash(hash))
        try stores.sessions.deleteAll(userId: user.id)
        try stores.apiTokens.revokeAll(userId: user.id, at: now().roundedToMilliseconds)
        return user
    }

    /// Disabling refuses the user's sessions and tokens at once, then ends every session and revokes every
    /// API token, so re-enabling revives none of them. Enabling a disabled user first ends whatever is
    /// left (tokens of a disabling that failed part-way, or that predates this rule) while the user is
    /// still disabled: a re-enabled user starts with no session and no valid token. Enabling an enabled
    /// user changes nothing.
    @discardableResult
    package func setDisabled(username: String, _ disabled: Bool) throws(AuthError) -> User {
        let existing = try existingUser(username: username)
        if disabled {
            let user = try stores.users.update(userId: existing.id, .disabled(true))
            try endAccess(userId: user.id)
            return user
        }
        // Read past any cache: whether the user is disabled now decides what must end.
        if try stores.users.credentials(username: existing.username)?.user.disabled ?? existing.disabled {
            try endAccess(userId: existing.id)
        }
        return try stores.users.update(userId: existing.id, .disabled(false))
    }

    /// Ends every session of the user and revokes every API token.
    private func endAccess(userId: String) throws(AuthError) {
        try stores.sessions.deleteAll(userId: userId)
        try stores.apiTokens.revokeAll(userId: userId, at: now().roundedToMilliseconds)
    }

    /// Changes the user's role.
    @discardableResult
    package func setRole(username: String, _ role: Role) throws(AuthError) -> User {
        try stores.users.update(userId: try existingUser(username: username).id, .role(role))
    }

    /// Links a Firebase account to a user. Conflict when the uid belongs to another user or the user is
    /// already linked to another uid (re-linking is never silent).
    @discardableResult
    package func linkFirebase(uid: String, userId: String) throws(AuthError) -> User {
        guard !uid.isEmpty, uid.utf8.count <= 128, !Self.hasControlCharacters(uid) else {
            throw AuthError(.invalid, "Firebase uid must be 1...128 printable characters")
        }
        return try stores.users.update(userId: userId, .firebaseUID(uid))
    }

    /// Users of one organisation (or all), by username.
    package func listUsers(organizationId: String?) throws(AuthError) -> [User] {
        try stores.users.users(organizationId: organizationId)
    }

    /// The user with this id, or nil.
    package func user(id: String) throws(AuthError) -> User? {
        try stores.users.user(id: id)
    }

    /// The user with this username (normalised first: case and surrounding spaces do not matter), or nil.
    package func user(username: String) throws(AuthError) -> User? {
        guard let name = Self.normalizedUsername(username) else { return nil }
        return try stores.users.user(username: name)
    }

    /// The user linked to this Firebase uid, or nil.
    package func user(firebaseUID: String) throws(AuthError) -> User? {
        try stores.users.user(firebaseUID: firebaseUID)
    }

    /// How many users there are, in every organisation.
    package func userCount() throws(AuthError) -> Int {
        try stores.users.userCount()
    }

    private func existingUser(username: String) throws(AuthError) -> User {
        guard let user = try user(username: username) else { throw AuthError(.notFound, "no such user") }
        return user
    }

    // MARK: - Passwords

    /// The user when the password is right and the user is enabled; nil otherwise. Every outcome costs
    /// one argon2 verification, so the time taken does not tell which usernames exist.
    ///
    /// A password longer than `PasswordHasher.maximumPasswordBytes` (which no account can have) is refused
    /// with `.invalid` before anything else: no user lookup, no hashing, so the answer and its cost are the
    /// same for every username.
    package func verifyPassword(username: String, password: String) throws(AuthError) -> User? {
        guard password.utf8.count <= PasswordHasher.maximumPasswordBytes else {
            throw AuthError(.invalid, "password is longer than \(PasswordHasher.maximumPasswordBytes) bytes")
        }
        guard let name = Self.normalizedUsername(username) else {
            hasher.burnVerification(password)
            return nil
        }
        guard let (user, hash) = try stores.users.credentials(username: name), let hash else {
            hasher.burnVerification(password)
            return nil
        }
        let matches = hasher.verify(password, encoded: hash)
        return matches && !user.disabled ? user : nil
    }

    /// Throws `.weakPassword` (too short, or one character repeated) or `.invalid` (too long).
    package func checkPasswordPolicy(_ password: String) throws(AuthError) {
        guard password.utf8.count <= PasswordHasher.maximumPasswordBytes else {
            throw AuthError(.invalid, "password is longer than \(PasswordHasher.maximumPasswordBytes) bytes")
        }
        guard password.count >= policy.minimumPasswordLength else {
            throw AuthError(.weakPassword, "password must have at least \(policy.minimumPasswordLength) characters")
        }
        if let first = password.first, password.allSatisfy({ $0 == first }) {
            throw AuthError(.weakPassword, "password must not be one character repeated")
        }
    }

    // MARK: - Input rules

    /// Lowercased and trimmed; nil unless 3...64 characters of [a-z0-9._@-].
    static func normalizedUsername(_ username: String) -> String? {
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let utf8 = name.utf8
        guard (3...64).contains(utf8.count) else { return nil }
        let allowed = utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "@") || c == UInt8(ascii: "-")
        }
        return allowed ? name : nil
    }

    private static func normalizedDisplayName(_ displayName: String?) throws(AuthError) -> String? {
        guard let trimmed = displayName?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else { return nil }
        guard trimmed.count <= 100, !hasControlCharacters(trimmed) else {
            throw AuthError(.invalid, "display name must be at most 100 printable characters")
        }
        return trimmed
    }

    private static func validateOrganizationId(_ id: String) throws(AuthError) {
        guard !id.isEmpty, id.utf8.count <= 128, !hasControlCharacters(id),
              id.trimmingCharacters(in: .whitespacesAndNewlines) == id
        else { throw AuthError(.invalid, "organisation id must be 1...128 printable characters") }
    }

    static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    static func clip(_ text: String, _ maxCharacters: Int) -> String {
        text.count <= maxCharacters ? text : String(text.prefix(maxCharacters))
    }
}
