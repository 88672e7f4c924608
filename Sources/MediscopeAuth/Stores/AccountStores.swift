import Foundation

/// The five stores behind `Accounts`, all on one backend (SQLite: `accounts.sqlite`; Firestore:
/// `AccountStores.firestore(client:)` in MediscopeFirestoreStore, optionally behind `cachingReads()`).
///
/// What every store protocol here promises, so that a backend can be written from these docs alone:
/// - **Calls** are synchronous and may block (a worker serves one request at a time). Every failure is an
///   `AuthError`: `.unavailable` when the backend cannot answer (down, timed out, corrupt; the caller
///   answers 503 and may retry), and only the kinds a method names otherwise.
/// - **Durability**: a write that returns is durable (survives a crash or power loss of this host) and
///   visible to every other process and host using the same backend; a write that throws has written
///   nothing. Each method is atomic on its own; nothing spans two calls.
/// - **Values** arrive validated and normalised by `Accounts`; a store keeps them exactly (strings compare
///   byte for byte) and does not re-validate. Ids are 26-character time-ordered ids made by the caller.
/// - **Time** is kept to the millisecond: a `Date` read back equals the one written rounded to the
///   millisecond, and `Accounts` only writes rounded dates. Comparisons are on those milliseconds.
/// - **Secrets never reach a store**: passwords arrive as argon2id PHC strings, session, CSRF and API
///   tokens as the lowercase hex SHA-256 of the token. A copy of the backend's data lets nobody sign in.
/// - **Users own sessions and tokens**: a `userId` handed to the session or token store names a user of
///   the `UserStore` on the same backend (`Accounts` checks this first).
package struct AccountStores: Sendable {
    /// Users and organisations.
    package var users: any UserStore
    /// Browser sessions.
    package var sessions: any SessionStore
    /// Personal API tokens.
    package var apiTokens: any APITokenStore
    /// Failed sign-ins, for throttling.
    package var signInThrottle: any SignInThrottleStore
    /// The append-only audit log.
    package var auditLog: any AuditLogStore

    /// The stores of one backend.
    package init(users: any UserStore, sessions: any SessionStore, apiTokens: any APITokenStore,
                signInThrottle: any SignInThrottleStore, auditLog: any AuditLogStore) {
        self.users = users
        self.sessions = sessions
        self.apiTokens = apiTokens
        self.signInThrottle = signInThrottle
        self.auditLog = auditLog
    }
}
