import Foundation

// The values of the accounts module: who may sign in, with which role, in which organisation, and
// the append-only record of what they did. `Accounts` applies the rules; the store protocols
// (UserStore, SessionStore, APITokenStore, SignInThrottleStore, AuditLogStore) keep these values.

/// What a user may do: clinicians see patient data, admins manage accounts and read the audit log.
package enum Role: String, Codable, Sendable, CaseIterable { case admin, clinician }

/// A local account (possibly linked to a Firebase account).
package struct User: Codable, Sendable, Equatable {
    /// 26-character time-ordered id.
    package var id: String
    /// Lowercase, 3...64 of [a-z0-9._@-]; unique across organisations.
    package var username: String
    /// Shown in the dashboard; nil when none was given.
    package var displayName: String?
    /// What the user may do.
    package var role: Role
    /// The organisation whose records the user sees.
    package var organizationId: String
    /// A disabled user cannot sign in; their sessions are ended and their tokens refused.
    package var disabled: Bool
    /// When the account was made (milliseconds).
    package var createdAt: Date
    /// The linked Firebase account's uid, if any.
    package var firebaseUID: String?

    /// A user as `Accounts` makes it and a store gives it back.
    package init(id: String, username: String, displayName: String?, role: Role, organizationId: String,
                disabled: Bool, createdAt: Date, firebaseUID: String?) {
        self.id = id; self.username = username; self.displayName = displayName; self.role = role
        self.organizationId = organizationId; self.disabled = disabled; self.createdAt = createdAt; self.firebaseUID = firebaseUID
    }
}

/// A signed-in browser session. The cookie token itself is never kept: stores hold its SHA-256.
package struct Session: Sendable, Equatable {
    /// Not the token: a handle for listing and audit.
    package var id: String
    /// The signed-in user.
    package var userId: String
    /// When the user signed in.
    package var createdAt: Date
    /// The last recorded activity (written at most once a minute); idle expiry counts from here.
    package var lastSeenAt: Date
    /// Absolute expiry, however active the session.
    package var expiresAt: Date
    /// SHA-256 of the CSRF token handed out with the session cookie.
    package var csrfHash: String

    /// A session as `Accounts` makes it and a store gives it back.
    package init(id: String, userId: String, createdAt: Date, lastSeenAt: Date, expiresAt: Date, csrfHash: String) {
        self.id = id; self.userId = userId; self.createdAt = createdAt; self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt; self.csrfHash = csrfHash
    }
}

/// A personal API token's record (the token itself is shown once and kept only as its SHA-256).
package struct APIToken: Codable, Sendable, Equatable {
    /// The token's handle (for listing and revoking); not the secret.
    package var id: String
    /// The owner.
    package var userId: String
    /// The owner's label for it ("laptop", "ci").
    package var name: String
    /// When it was made.
    package var createdAt: Date
    /// The last recorded use (written at most once a minute); nil when never used.
    package var lastUsedAt: Date?
    /// When it was revoked; nil while it is valid.
    package var revokedAt: Date?

    /// A token record as `Accounts` makes it and a store gives it back.
    package init(id: String, userId: String, name: String, createdAt: Date, lastUsedAt: Date?, revokedAt: Date?) {
        self.id = id; self.userId = userId; self.name = name; self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt; self.revokedAt = revokedAt
    }
}

/// One audit record. Never holds patient details, passwords or tokens: only ids and fixed words.
package struct AuditEntry: Codable, Sendable, Equatable {
    /// Given by the audit log on append; nil before.
    package var id: Int64?
    /// When it happened.
    package var time: Date
    /// Who did it, when known.
    package var actorUserId: String?
    /// As typed for failed sign-ins (so attacks are visible).
    package var actorUsername: String?
    /// The organisation whose data or users were touched.
    package var organizationId: String?
    /// What was done, e.g. session.create, analysis.view, user.disable.
    package var action: String
    /// Analysis id, user id or token id.
    package var recordId: String?
    /// The client's address.
    package var address: String
    /// success | denied | failure | not_found | throttled.
    package var outcome: String

    /// An entry to append (its id is given by the log).
    package init(time: Date = Date(), actorUserId: String?, actorUsername: String?, organizationId: String?,
                action: String, recordId: String?, address: String, outcome: String) {
        self.time = time; self.actorUserId = actorUserId; self.actorUsername = actorUsername
        self.organizationId = organizationId; self.action = action; self.recordId = recordId
        self.address = address; self.outcome = outcome
    }
}

/// Which audit entries to read: every set field must match (see `AuditLogStore.entries`).
package struct AuditFilter: Sendable, Equatable {
    /// Entries about this organisation.
    package var organizationId: String?
    /// Entries by this user.
    package var actorUserId: String?
    /// Exact, or a prefix ending in "." (e.g. "analysis.").
    package var action: String?
    /// Entries about this record.
    package var recordId: String?
    /// Entries with this outcome.
    package var outcome: String?
    /// Entries at or after this time.
    package var since: Date?
    /// Entries before this time.
    package var until: Date?
    /// At most this many entries, 1...1000.
    package var limit: Int = 100
    /// Paging: entries with id > afterId, oldest first.
    package var afterId: Int64?
    /// Newest first, paging with entries of id < beforeId (the dashboard's order). Excludes afterId.
    package var newestFirst = false
    /// Paging: entries with id < beforeId.
    package var beforeId: Int64?
    /// Every entry (up to the limit), oldest first.
    package init() {}
}

/// Every failure of the accounts module. `.unavailable`: the backend failed (retry later); the other
/// kinds describe the request (bad input, taken name, no such user, weak password).
package struct AuthError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as the API maps it (503, 422, 409, 404, 422).
    package enum Kind: String, Sendable { case unavailable, invalid, conflict, notFound, weakPassword }
    /// What went wrong.
    package let kind: Kind
    /// For logs and API problems; never holds a secret or a statement argument.
    package let message: String
    /// An error of `kind` described by `message`.
    package init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    /// "kind: message".
    package var description: String { "\(kind): \(message)" }
}

/// Session lifetimes, the password minimum and sign-in throttling limits.
package struct AccountPolicy: Sendable {
    /// A session unused this long ends.
    package var sessionIdleSeconds: Double = 30 * 60
    /// A session ends this long after sign-in, however active.
    package var sessionAbsoluteSeconds: Double = 12 * 3600
    /// Shortest password accepted, in characters.
    package var minimumPasswordLength = 12
    /// Failed sign-ins of one account within `failureWindowSeconds` after which the address they came from
    /// waits (429) for that account, and addresses the account never signed in from are slowed to one try
    /// per `failureWindowSeconds / maxFailuresPerAccount`; see `Accounts.signInRetryAfter` for the policy.
    package var maxFailuresPerAccount = 5
    /// Failed sign-ins from one address (any usernames) within `failureWindowSeconds` before it waits (429).
    package var maxFailuresPerAddress = 20
    /// How far back failed sign-ins count.
    package var failureWindowSeconds: Double = 15 * 60
    /// How long after a good sign-in an address stays known-good for the account (never slowed by other
    /// addresses' failures).
    package var knownAddressSeconds: Double = 90 * 24 * 3600
    /// The defaults: 30 min idle, 12 h absolute, 12 characters, 5 / 20 failures in 15 min, known addresses 90 days.
    package init() {}
}
