import Foundation

/// What a failed sign-in is counted against.
public enum SignInThrottleKey: Sendable, Hashable {
    /// The username as typed (normalised by `Accounts`; it need not exist).
    case account(String)
    /// The client's address.
    case address(String)
}

/// Recent failed sign-ins, so `Accounts` can throttle per account and per address. See `AccountStores`
/// for what every store promises. Keys arrive trimmed, lowercased and at most 128 characters; the store
/// compares them exactly. Rows hold no secret, but they are not audit records: old ones are forgotten.
public protocol SignInThrottleStore: Sendable {
    /// Records one failure of `account` from `address` at `at`, and forgets every failure (of any key)
    /// at or before `forgetUpTo`.
    func recordFailure(account: String, address: String, at: Date, forgetUpTo: Date) throws(AuthError)

    /// The time of the `n`-th newest failure of `key` (n = 1: the newest) among those strictly after
    /// `after`; nil when there are fewer than `n` such failures or `n < 1`.
    func nthNewestFailure(_ key: SignInThrottleKey, n: Int, after: Date) throws(AuthError) -> Date?

    /// Forgets every failure recorded for `account`, from whatever address (after a good sign-in);
    /// failures of other accounts stay, so an address keeps counting them.
    func clearFailures(account: String) throws(AuthError)

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}
