import Foundation
import MediscopeEncoding

extension Accounts {
    // MARK: - Sign-in throttling

    /// Seconds until a sign-in for this username from this address is allowed again, or nil when it is
    /// allowed now. The policy, with the failures counted within `failureWindowSeconds` (15 min):
    ///
    /// 1. **Per address**: `maxFailuresPerAddress` (20) failures from the address, whatever the usernames,
    ///    hold that address until enough of them leave the window.
    /// 2. **Per account and address**: `maxFailuresPerAccount` (5) failures of the username from this
    ///    address hold this address, for this username only, until enough of them leave the window.
    /// 3. **Per account, from addresses it never signed in from**: once the username has
    ///    `maxFailuresPerAccount` failures from anywhere, an address that is not known-good for it may try
    ///    once per `failureWindowSeconds / maxFailuresPerAccount` (3 min) after the newest failure: a
    ///    guesser spread over many addresses is slowed to that pace, nobody is held for the whole window.
    ///
    /// An address is known-good for an account for `knownAddressSeconds` (90 days) after a good sign-in
    /// from it (`recordSignInSuccess`; kept as a salted hash). Rule 3 never applies there, so other
    /// people's failures never keep the account's owner out of an address they signed in from before; only
    /// failures from that address itself count (rules 1 and 2). The answer is the same for a username
    /// that exists and one that does not, and for a right and a wrong password (it is asked first).
    package func signInRetryAfter(username: String, address: String) throws(AuthError) -> Int? {
        let nowMs = now().millisecondsSince1970
        let windowMs = policy.failureWindowSeconds.wholeMilliseconds
        let windowStart = Date(millisecondsSince1970: nowMs - windowMs)
        let account = Self.throttleKey(username), client = Self.throttleKey(address)
        let throttle = stores.signInThrottle
        // A limit's failure whose leaving the window brings the count below it is its maximum-th newest.
        var untils = [
            try throttle.nthNewestFailure(.address(client), n: policy.maxFailuresPerAddress, after: windowStart),
            try throttle.nthNewestFailure(.accountAndAddress(account: account, address: client), n: policy.maxFailuresPerAccount,
                                          after: windowStart),
        ].compactMap { $0.map { $0.millisecondsSince1970 + windowMs } }
        if try throttle.nthNewestFailure(.account(account), n: policy.maxFailuresPerAccount, after: windowStart) != nil,
           let newest = try throttle.nthNewestFailure(.account(account), n: 1, after: windowStart),
           try !isKnownAddress(account: account, address: client, nowMs: nowMs) {
            untils.append(newest.millisecondsSince1970 + (policy.failureWindowSeconds / Double(max(policy.maxFailuresPerAccount, 1))).wholeMilliseconds)
        }
        guard let longest = untils.map({ $0 - nowMs }).max(), longest > 0 else { return nil }
        return Int((Double(longest) / 1000).rounded(.up))
    }

    /// Records one failed sign-in (unknown user and wrong password alike) and prunes failures older than the window.
    package func recordSignInFailure(username: String, address: String) throws(AuthError) {
        let nowMs = now().millisecondsSince1970
        let cutoff = Date(millisecondsSince1970: nowMs - policy.failureWindowSeconds.wholeMilliseconds)
        try stores.signInThrottle.recordFailure(account: Self.throttleKey(username), address: Self.throttleKey(address),
                                                at: Date(millisecondsSince1970: nowMs), forgetUpTo: cutoff)
    }

    /// After a good sign-in: forgets the account's failures from this address (those from elsewhere stay
    /// counted), and remembers the address as known-good for the account (as a hash salted with the
    /// account) for `knownAddressSeconds`.
    package func recordSignInSuccess(username: String, address: String) throws(AuthError) {
        let account = Self.throttleKey(username), client = Self.throttleKey(address)
        let current = now().roundedToMilliseconds
        try stores.signInThrottle.clearFailures(account: account, address: client)
        try stores.signInThrottle.recordKnownAddress(
            account: account, addressHash: Self.knownAddressHash(account: account, address: client), at: current,
            forgetUpTo: current.addingTimeInterval(-policy.knownAddressSeconds).roundedToMilliseconds)
    }

    private func isKnownAddress(account: String, address: String, nowMs: Int64) throws(AuthError) -> Bool {
        guard let last = try stores.signInThrottle.knownAddressLastSuccess(
            account: account, addressHash: Self.knownAddressHash(account: account, address: address)) else { return false }
        return last.millisecondsSince1970 > nowMs - policy.knownAddressSeconds.wholeMilliseconds
    }

    /// The address as the store keeps it: SHA-256 over a label, the account and the address, so equal
    /// addresses of different accounts do not match and the table lists no addresses in clear. (Not a
    /// secret key: it hides addresses from a casual reader, not from a search of the address space.)
    static func knownAddressHash(account: String, address: String) -> String {
        Tokens.sha256Hex("mediscope known sign-in address\n\(account)\n\(address)")
    }

    /// Username or address as a throttling key: trimmed, lowercased, bounded.
    static func throttleKey(_ text: String) -> String {
        clip(text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(), 128)
    }

    // MARK: - Audit

    /// Appends one entry durably (on disk, or acknowledged by the backend, when this returns). Returns its id.
    /// Throws `.invalid` for an empty or over-long action (64 bytes) or outcome (32 bytes).
    @discardableResult
    package func audit(_ entry: AuditEntry) throws(AuthError) -> Int64 {
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
    package func auditEntries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
        var clamped = filter
        clamped.limit = min(max(filter.limit, 1), 1000)
        return try stores.auditLog.entries(clamped)
    }
}
