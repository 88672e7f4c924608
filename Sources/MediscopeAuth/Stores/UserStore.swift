import Foundation

/// Users and the organisations they belong to. See `AccountStores` for what every store promises.
///
/// Usernames arrive normalised (lowercase, 3...64 of `a-z 0-9 . _ @ -`) and are unique across all
/// organisations; a Firebase uid belongs to at most one user. Users are never deleted (they are disabled).
package protocol UserStore: Sendable {
    /// Creates the organisation, or renames it when it exists under another name. Idempotent.
    func saveOrganization(id: String, name: String) throws(AuthError)

    /// The organisation's name; nil when no organisation has this id.
    func organizationName(id: String) throws(AuthError) -> String?

    /// Adds `user` with `passwordHash` (an argon2id PHC string; nil: the user cannot sign in with a
    /// password). Creates the user's organisation, named by its id, when there is none; an existing
    /// organisation keeps its name. Atomic: a failure writes neither.
    /// - Throws: `.conflict` when the id, the username or the Firebase uid is taken already.
    func insert(_ user: User, passwordHash: String?) throws(AuthError)

    /// The user with this id; nil when none.
    func user(id: String) throws(AuthError) -> User?

    /// The user with this (normalised) username, exact match; nil when none.
    func user(username: String) throws(AuthError) -> User?

    /// The user linked to this Firebase uid, exact match; nil when none.
    func user(firebaseUID: String) throws(AuthError) -> User?

    /// The user with this (normalised) username and their stored password hash, for verifying a sign-in;
    /// nil when no user has the name. The hash is nil for a user without password sign-in.
    func credentials(username: String) throws(AuthError) -> (user: User, passwordHash: String?)?

    /// The users of one organisation, or of every organisation when nil, by username ascending (byte order).
    func users(organizationId: String?) throws(AuthError) -> [User]

    /// How many users there are, in every organisation.
    func userCount() throws(AuthError) -> Int

    /// Applies `change` to the user atomically and returns the user as stored afterwards.
    /// - Throws: `.notFound` when no user has the id; `.conflict` for a Firebase link the change refuses.
    @discardableResult
    func update(userId: String, _ change: UserChange) throws(AuthError) -> User

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}

/// One change to a stored user.
package enum UserChange: Sendable, Equatable {
    /// Replaces the password hash (an argon2id PHC string).
    case passwordHash(String)
    /// Disables or enables the user.
    case disabled(Bool)
    /// Changes the user's role.
    case role(Role)
    /// Links a Firebase uid. No change when the user is linked to this uid already; `.conflict` when the
    /// user is linked to another uid (re-linking is never silent) or another user has this uid.
    case firebaseUID(String)
}
