import Foundation

// The values of the accounts module: who may sign in, with which role, in which organisation, and
// the append-only record of what they did. `Accounts` applies the rules; the store protocols
// (UserStore, SessionStore, APITokenStore, SignInThrottleStore, AuditLogStore) keep these values.

/// What a user may do: clinicians see patient data, admins manage accounts and read the audit log.
public enum Role: String, Codable, Sendable, CaseIterable { case admin, clinician }

/// A local account (possibly linked to a Firebase account).
public struct User: Codable, Sendable, Equatable {
    /// 26-character time-ordered id.
    public var id: String
    /// Lowercase, 3...64 of [a-z0-9._@-]; unique across organisations.
    public var username: String
    /// Shown in the dashboard; nil when none was given.
    public var displayName: String?
    /// What the user may do.
    public var role: Role
    /// The organisation whose records the user sees.
    public var organizationId: String
    /// A disabled user cannot sign in; their sessions are ended and their tokens refused.
    public var disabled: Bool
    /// When the account was made (milliseconds).
    public var createdAt: Date
    /// The linked Firebase account's uid, if any.
    public var firebaseUID: String?

    /// A user as `Accounts` makes it and a store gives it back.
    public init(id: String, username: String, displayName: String?, role: Role, organizationId: String,
                disabled: Bool, createdAt: Date, firebaseUID: String?) {
        self.id = id; self.username = username; self.displayName = displayName; self.role = role
        self.organizationId = organizationId; self.disabled = disabled; self.createdAt = createdAt; self.firebaseUID = firebaseUID
    }
}

/// A signed-in browser session. The cookie token itself is never kept: stores hold its SHA-256.
public struct Session: Sendable, Equatable {
    /// Not the token: a handle for listing and audit.
    public var id: String
    /// The signed-in user.
    public var userId: String
    /// When the user signed in.
    public var createdAt: Date
    /// The last recorded activity (written at most once a minute); idle expiry counts from here.
    public var lastSeenAt: Date
    /// Absolute expiry, however active the session.
    public var expiresAt: Date
    /// SHA-256 of the CSRF token handed out with the session cookie.
    public var csrfHash: String

    /// A session as `Accounts` makes it and a store gives it back.
    public init(id: String, userId: String, createdAt: Date, lastSeenAt: Date, expiresAt: Date, csrfHash: String) {
        self.id = id; self.userId = userId; self.createdAt = createdAt; self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt; self.csrfHash = csrfHash
    }
}

/// A personal API token's record (the token itself is shown once and kept only as its SHA-256).
public struct APIToken: Codable, Sendable, Equatable {
    /// The token's handle (for listing and revoking); not the secret.
    public var id: String
    /// The owner.
    public var userId: String
    /// The owner's label for it ("laptop", "ci").
    public var name: String
    /// When it was made.
    public var createdAt: Date
    /// The last recorded use (written at most once a minute); nil when never used.
    public var lastUsedAt: Date?
    /// When it was revoked; nil while it is valid.
    public var revokedAt: Date?

    /// A token record as `Accounts` makes it and a store gives it back.
    public init(id: String, userId: String, name: String, createdAt: Date, lastUsedAt: Date?, revokedAt: Date?) {
        self.id = id; self.userId = userId; self.name = name; self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt; self.revokedAt = revokedAt
    }
}

/// One audit record. Never holds patient details, passwords or tokens: only ids and fixed words.
public struct AuditEntry: Codable, Sendable, Equatable {
    /// Given by the audit log on append; nil before.
    public var id: Int64?
    /// When it happened.
    public var time: Date
    /// Who did it, when known.
    public var actorUserId: String?
    /// As typed for failed sign-ins (so attacks are visible).
    public var actorUsername: String?
    /// The organisation whose data or users were touched.
    public var organizationId: String?
    /// What was done, e.g. session.create, analysis.view, user.disable.
    public var action: String
    /// Analysis id, user id or token id.
    public var recordId: String?
    /// The client's address.
    public var address: String
    /// success | denied | failure | not_found | throttled.
    public var outcome: String

    /// An entry to append (its id is given by the log).
    public init(time: Date = Date(), actorUserId: String?, actorUsername: String?, organizationId: String?,
                action: String, recordId: String?, address: String, outcome: String) {
        self.time = time; self.actorUserId = actorUserId; self.actorUsername = actorUsername
        self.organizationId = organizationId; self.action = action; self.recordId = recordId
        self.address = address; self.outcome = outcome
    }
}

/// Which audit entries to read: every set field must match (see `AuditLogStore.entries`).
public struct AuditFilter: Sendable, Equatable {
    /// Entries about this organisation.
    public var organizationId: String?
    /// Entries by this user.
    public var actorUserId: String?
    /// Exact, or a prefix ending in "." (e.g. "analysis.").
    public var action: String?
    /// Entries about this record.
    public var recordId: String?
    /// Entries with this outcome.
    public var outcome: String?
    /// Entries at or after this time.
    public var since: Date?
    /// Entries before this time.
    public var until: Date?
    /// At most this many entries, 1...1000.
    public var limit: Int = 100
    /// Paging: entries with id > afterId, oldest first.
    public var afterId: Int64?
    /// Newest first, paging with entries of id < beforeId (the dashboard's order). Excludes afterId.
    public var newestFirst = false
    /// Paging: entries with id < beforeId.
    public var beforeId: Int64?
    /// Every entry (up to the limit), oldest first.
    public init() {}
}

/// Every failure of the accounts module. `.unavailable`: the backend failed (retry later); the other
/// kinds describe the request (bad input, taken name, no such user, weak password).
public struct AuthError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as the API maps it (503, 422, 409, 404, 422).
    public enum Kind: String, Sendable { case unavailable, invalid, conflict, notFound, weakPassword }
    /// What went wrong.
    public let kind: Kind
    /// For logs and API problems; never holds a secret or a statement argument.
    public let message: String
    /// An error of `kind` described by `message`.
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    /// "kind: message".
    public var description: String { "\(kind): \(message)" }
}

/// Session lifetimes, the password minimum and sign-in throttling limits.
public struct AccountPolicy: Sendable {
    /// A session unused this long ends.
    public var sessionIdleSeconds: Double = 30 * 60
    /// A session ends this long after sign-in, however active.
    public var sessionAbsoluteSeconds: Double = 12 * 3600
    /// Shortest password accepted, in characters.
    public var minimumPasswordLength = 12
    /// Failed sign-ins of one account within `failureWindowSeconds` after which the address they came from
    /// waits (429) for that account, and addresses the account never signed in from are slowed to one try
    /// per `failureWindowSeconds / maxFailuresPerAccount`; see `Accounts.signInRetryAfter` for the policy.
    public var maxFailuresPerAccount = 5
    /// Failed sign-ins from one address (any usernames) within `failureWindowSeconds` before it waits (429).
    public var maxFailuresPerAddress = 20
    /// How far back failed sign-ins count.
    public var failureWindowSeconds: Double = 15 * 60
    /// How long after a good sign-in an address stays known-good for the account (never slowed by other
    /// addresses' failures).
    public var knownAddressSeconds: Double = 90 * 24 * 3600
    /// The defaults: 30 min idle, 12 h absolute, 12 characters, 5 / 20 failures in 15 min, known addresses 90 days.
    public init() {}
}
