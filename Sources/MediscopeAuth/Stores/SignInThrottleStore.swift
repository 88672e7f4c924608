import Foundation

/// What a failed sign-in is counted against.
package enum SignInThrottleKey: Sendable, Hashable {
    /// The username as typed (normalised by `Accounts`; it need not exist).
    case account(String)
    /// The client's address.
    case address(String)
    /// One username from one address: the failures matching both.
    case accountAndAddress(account: String, address: String)
}

/// Recent failed sign-ins, so `Accounts` can throttle per account and per address, and the addresses
/// each account signed in from successfully (as salted hashes), so that throttling never locks an owner
/// out of a known-good address. See `AccountStores` for what every store promises. Keys arrive trimmed,
/// lowercased and at most 128 characters; the store compares them exactly. Rows hold no secret, but they
/// are not audit records: old ones are forgotten.
package protocol SignInThrottleStore: Sendable {
    /// Records one failure of `account` from `address` at `at`, and forgets every failure (of any key)
    /// at or before `forgetUpTo`.
    func recordFailure(account: String, address: String, at: Date, forgetUpTo: Date) throws(AuthError)

    /// The time of the `n`-th newest failure of `key` (n = 1: the newest) among those strictly after
    /// `after`; nil when there are fewer than `n` such failures or `n < 1`.
    func nthNewestFailure(_ key: SignInThrottleKey, n: Int, after: Date) throws(AuthError) -> Date?

    /// Forgets every failure recorded for `account` from `address` (after a good sign-in from there);
    /// the account's failures from other addresses and other accounts' failures stay counted.
    func clearFailures(account: String, address: String) throws(AuthError)

    /// Remembers that `account` signed in successfully at `at` from the address whose hash is
    /// `addressHash` (lowercase hex SHA-256, salted by `Accounts`; the address itself never reaches the
    /// store); a later success replaces the time. Forgets every remembered address (of any account)
    /// last used at or before `forgetUpTo`.
    func recordKnownAddress(account: String, addressHash: String, at: Date, forgetUpTo: Date) throws(AuthError)

    /// When `account` last signed in successfully from the address hashed as `addressHash`; nil when
    /// never, or forgotten.
    func knownAddressLastSuccess(account: String, addressHash: String) throws(AuthError) -> Date?

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}
