import Foundation

// The values of the accounts module: who may sign in, with which role, in which organisation, and
// the append-only record of what they did. `Accounts` applies the rules; the store protocols
// (UserStore, SessionStore, APITokenStore, SignInThrottleStore, AuditLogStore) keep these values.

/// What a user may do: clinicians see patient data, admins manage accounts and read the audit log.
public enum Role: String, Codable, Sendable, CaseIterable { case admin, clinician }

/// A local account (possibly linked to a Firebase account).
public struct User: Codable, Sendable, Equatable {
    public var id: String                 // 26-char time-ordered id
    public var username: String           // lowercase, 3...64 of [a-z0-9._@-]
    public var displayName: String?
    public var role: Role
    public var organizationId: String
    public var disabled: Bool
    public var createdAt: Date
    public var firebaseUID: String?

    public init(id: String, username: String, displayName: String?, role: Role, organizationId: String,
                disabled: Bool, createdAt: Date, firebaseUID: String?) {
        self.id = id; self.username = username; self.displayName = displayName; self.role = role
        self.organizationId = organizationId; self.disabled = disabled; self.createdAt = createdAt; self.firebaseUID = firebaseUID
    }
}

/// A signed-in browser session. The cookie token itself is never kept: stores hold its SHA-256.
public struct Session: Sendable, Equatable {
    public var id: String                 // not the token: a handle for listing and audit
    public var userId: String
    public var createdAt: Date
    public var lastSeenAt: Date
    public var expiresAt: Date            // absolute expiry
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
    public var id: String
    public var userId: String
    public var name: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    /// A token record as `Accounts` makes it and a store gives it back.
    public init(id: String, userId: String, name: String, createdAt: Date, lastUsedAt: Date?, revokedAt: Date?) {
        self.id = id; self.userId = userId; self.name = name; self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt; self.revokedAt = revokedAt
    }
}

/// One audit record. Never holds patient details, passwords or tokens: only ids and fixed words.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var id: Int64?
    public var time: Date
    public var actorUserId: String?
    public var actorUsername: String?     // as typed for failed sign-ins (so attacks are visible)
    public var organizationId: String?
    public var action: String             // e.g. session.create, analysis.view, user.disable
    public var recordId: String?          // analysis id, user id, token id
    public var address: String
    public var outcome: String            // success | denied | failure | not_found | throttled

    public init(time: Date = Date(), actorUserId: String?, actorUsername: String?, organizationId: String?,
                action: String, recordId: String?, address: String, outcome: String) {
        self.time = time; self.actorUserId = actorUserId; self.actorUsername = actorUsername
        self.organizationId = organizationId; self.action = action; self.recordId = recordId
        self.address = address; self.outcome = outcome
    }
}

/// Which audit entries to read: every set field must match (see `AuditLogStore.entries`).
public struct AuditFilter: Sendable, Equatable {
    public var organizationId: String?
    public var actorUserId: String?
    public var action: String?            // exact, or a prefix ending in "." (e.g. "analysis.")
    public var recordId: String?
    public var outcome: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int = 100           // 1...1000
    public var afterId: Int64?            // paging: entries with id > afterId, oldest first
    /// Newest first, paging with entries of id < beforeId (the dashboard's order). Excludes afterId.
    public var newestFirst = false
    public var beforeId: Int64?
    public init() {}
}

/// Every failure of the accounts module. `.unavailable`: the backend failed (retry later); the other
/// kinds describe the request (bad input, taken name, no such user, weak password).
public struct AuthError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case unavailable, invalid, conflict, notFound, weakPassword }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { "\(kind): \(message)" }
}

/// Session lifetimes, the password minimum and sign-in throttling limits.
public struct AccountPolicy: Sendable {
    public var sessionIdleSeconds: Double = 30 * 60
    public var sessionAbsoluteSeconds: Double = 12 * 3600
    public var minimumPasswordLength = 12
    /// Failed sign-ins allowed per account / per address within `failureWindowSeconds` before 429.
    public var maxFailuresPerAccount = 5
    public var maxFailuresPerAddress = 20
    public var failureWindowSeconds: Double = 15 * 60
    public init() {}
}
