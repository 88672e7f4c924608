import Foundation
import MediscopeEncoding

extension Accounts {
    // MARK: - Sign-in throttling

    /// Seconds until a sign-in for this username from this address is allowed again, or nil when it is
    /// allowed now. Throttled when the failures within `failureWindowSeconds` reach the per-account or the
    /// per-address maximum; the wait lasts until enough of them leave the window.
    public func signInRetryAfter(username: String, address: String) throws(AuthError) -> Int? {
        let nowMs = now().millisecondsSince1970
        let windowMs = policy.failureWindowSeconds.wholeMilliseconds
        let windowStart = Date(millisecondsSince1970: nowMs - windowMs)
        // The failure whose leaving the window brings the count below the maximum is the maximum-th newest.
        let limiting = [
            try stores.signInThrottle.nthNewestFailure(.account(Self.throttleKey(username)),
                                                       n: policy.maxFailuresPerAccount, after: windowStart),
            try stores.signInThrottle.nthNewestFailure(.address(Self.throttleKey(address)),
                                                       n: policy.maxFailuresPerAddress, after: windowStart),
        ]
        let waits = limiting.compactMap { $0 }.map { $0.millisecondsSince1970 + windowMs - nowMs }
        guard let longest = waits.max(), longest > 0 else { return nil }
        return Int((Double(longest) / 1000).rounded(.up))
    }

    /// Records one failed sign-in (unknown user and wrong password alike) and prunes failures older than the window.
    public func recordSignInFailure(username: String, address: String) throws(AuthError) {
        let nowMs = now().millisecondsSince1970
        let cutoff = Date(millisecondsSince1970: nowMs - policy.failureWindowSeconds.wholeMilliseconds)
        try stores.signInThrottle.recordFailure(account: Self.throttleKey(username), address: Self.throttleKey(address),
                                                at: Date(millisecondsSince1970: nowMs), forgetUpTo: cutoff)
    }

    /// Forgets the account's failures after a good sign-in (the address's failures stay counted).
    public func clearSignInFailures(username: String) throws(AuthError) {
        try stores.signInThrottle.clearFailures(account: Self.throttleKey(username))
    }

    /// Username or address as a throttling key: trimmed, lowercased, bounded.
    private static func throttleKey(_ text: String) -> String {
        clip(text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(), 128)
    }

    // MARK: - Audit

    /// Appends one entry durably (on disk, or acknowledged by the backend, when this returns). Returns its id.
    /// Throws `.invalid` for an empty or over-long action (64 bytes) or outcome (32 bytes).
    @discardableResult
    public func audit(_ entry: AuditEntry) throws(AuthError) -> Int64 {
        guard !entry.action.isEmpty, entry.action.utf8.count <= 64 else {
            throw AuthError(.invalid, "audit action must be 1...64 bytes")
        }
        guard !entry.outcome.isEmpty, entry.outcome.utf8.count <= 32 else {
            throw AuthError(.invalid, "audit outcome must be 1...32 bytes")
        }
        // Caller-supplied text (a username as typed, a forwarded address) is bounded, not refused:
        // an attack must still leave its trace.
        var bounded = entry
        bounded.id = nil
        bounded.actorUserId = entry.actorUserId.map { Self.clip($0, 64) }
        bounded.actorUsername = entry.actorUsername.map { Self.clip($0, 128) }
        bounded.organizationId = entry.organizationId.map { Self.clip($0, 128) }
        bounded.recordId = entry.recordId.map { Self.clip($0, 128) }
        bounded.address = Self.clip(entry.address, 64)
        return try stores.auditLog.append(bounded)
    }

    /// Entries matching every set field of the filter, oldest first by id, at most `limit` (clamped to 1...1000).
    /// `since` is inclusive, `until` exclusive; an action ending in "." matches as a prefix.
    public func auditEntries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
        var clamped = filter
        clamped.limit = min(max(filter.limit, 1), 1000)
        return try stores.auditLog.entries(clamped)
    }
}
