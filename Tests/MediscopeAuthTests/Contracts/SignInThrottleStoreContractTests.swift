import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing
import TestSupport

/// The `SignInThrottleStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct SignInThrottleStoreContractTests {
    typealias V = ContractValues
    private static let never = V.time(-1_000_000)

    /// Records failures (account, address, seconds) that nothing forgets.
    private static func fail(_ throttle: any SignInThrottleStore, _ failures: [(String, String, Double)]) throws {
        for (account, address, seconds) in failures {
            try throttle.recordFailure(account: account, address: address, at: V.time(seconds), forgetUpTo: never)
        }
    }

    @Test(arguments: AccountBackend.all)
    func nthNewestCountsOnlyFailuresAfterTheGivenTime(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let throttle = instance.stores.signInThrottle
        try throttle.checkReady()
        try Self.fail(throttle, [("alice", "10.0.0.1", 0), ("alice", "10.0.0.2", 100), ("bob", "10.0.0.1", 200)])

        let alice = SignInThrottleKey.account("alice")
        #expect(try throttle.nthNewestFailure(alice, n: 1, after: Self.never) == V.time(100))
        #expect(try throttle.nthNewestFailure(alice, n: 2, after: Self.never) == V.time(0))
        #expect(try throttle.nthNewestFailure(alice, n: 3, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(alice, n: 0, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(alice, n: 2, after: V.time(0)) == nil)      // strictly after
        #expect(try throttle.nthNewestFailure(.account("ALICE"), n: 1, after: Self.never) == nil)   // exact keys
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 2, after: Self.never) == V.time(0))
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 1, after: Self.never) == V.time(200))
        #expect(try instance.secondInstance().signInThrottle.nthNewestFailure(alice, n: 2, after: Self.never) == V.time(0))
    }

    @Test(arguments: AccountBackend.all)
    func recordingForgetsOldFailuresOfEveryKey(_ backend: AccountBackend) throws {
        let throttle = try backend.make().stores.signInThrottle
        try Self.fail(throttle, [("alice", "10.0.0.1", 0), ("bob", "10.0.0.2", 10)])
        try throttle.recordFailure(account: "carol", address: "10.0.0.3", at: V.time(20), forgetUpTo: V.time(10))
        #expect(try throttle.nthNewestFailure(.account("alice"), n: 1, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(.address("10.0.0.2"), n: 1, after: Self.never) == nil)   // at the cutoff
        #expect(try throttle.nthNewestFailure(.account("carol"), n: 1, after: Self.never) == V.time(20))
    }

    @Test(arguments: AccountBackend.all)
    func accountAndAddressCountsFailuresMatchingBoth(_ backend: AccountBackend) throws {
        let throttle = try backend.make().stores.signInThrottle
        try Self.fail(throttle, [("alice", "10.0.0.1", 0), ("bob", "10.0.0.1", 10), ("alice", "10.0.0.2", 20), ("alice", "10.0.0.1", 30)])
        let pair = SignInThrottleKey.accountAndAddress(account: "alice", address: "10.0.0.1")
        #expect(try throttle.nthNewestFailure(pair, n: 1, after: Self.never) == V.time(30))
        #expect(try throttle.nthNewestFailure(pair, n: 2, after: Self.never) == V.time(0))
        #expect(try throttle.nthNewestFailure(pair, n: 3, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(pair, n: 0, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(pair, n: 2, after: V.time(0)) == nil)      // strictly after
        #expect(try throttle.nthNewestFailure(.accountAndAddress(account: "bob", address: "10.0.0.2"), n: 1, after: Self.never) == nil)
    }

    @Test(arguments: AccountBackend.all)
    func accountAndAddressFindsTheAccountAmongManyFailuresOfTheAddress(_ backend: AccountBackend) throws {
        // More failures of the address than one page of a backend's query: the account's are still found.
        let throttle = try backend.make().stores.signInThrottle
        try throttle.recordFailure(account: "alice", address: "10.0.0.1", at: V.time(0), forgetUpTo: Self.never)
        for n in 1...450 { try throttle.recordFailure(account: "user\(n)", address: "10.0.0.1", at: V.time(Double(n)), forgetUpTo: Self.never) }
        let pair = SignInThrottleKey.accountAndAddress(account: "alice", address: "10.0.0.1")
        #expect(try throttle.nthNewestFailure(pair, n: 1, after: Self.never) == V.time(0))
        #expect(try throttle.nthNewestFailure(pair, n: 2, after: Self.never) == nil)
    }

    @Test(arguments: AccountBackend.all)
    func clearingAnAccountsFailuresFromOneAddressKeepsTheRest(_ backend: AccountBackend) throws {
        let throttle = try backend.make().stores.signInThrottle
        try Self.fail(throttle, [("alice", "10.0.0.1", 0), ("alice", "10.0.0.2", 1), ("bob", "10.0.0.1", 2)])
        try throttle.clearFailures(account: "alice", address: "10.0.0.1")
        #expect(try throttle.nthNewestFailure(.accountAndAddress(account: "alice", address: "10.0.0.1"), n: 1, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(.account("alice"), n: 1, after: Self.never) == V.time(1))
        #expect(try throttle.nthNewestFailure(.account("alice"), n: 2, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(.account("bob"), n: 1, after: Self.never) == V.time(2))
        // The cleared row no longer counts for its address either; other accounts' rows still do.
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 1, after: Self.never) == V.time(2))
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 2, after: Self.never) == nil)
    }

    @Test(arguments: AccountBackend.all)
    func knownAddressesAreRememberedPerAccountReplacedAndForgotten(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let throttle = instance.stores.signInThrottle
        let home = V.hash("home"), office = V.hash("office")
        #expect(try throttle.knownAddressLastSuccess(account: "alice", addressHash: home) == nil)
        try throttle.recordKnownAddress(account: "alice", addressHash: home, at: V.time(0), forgetUpTo: Self.never)
        try throttle.recordKnownAddress(account: "bob", addressHash: office, at: V.time(5), forgetUpTo: Self.never)
        #expect(try throttle.knownAddressLastSuccess(account: "alice", addressHash: home) == V.time(0))
        #expect(try throttle.knownAddressLastSuccess(account: "alice", addressHash: office) == nil)   // bob's, not alice's
        #expect(try throttle.knownAddressLastSuccess(account: "bob", addressHash: home) == nil)
        #expect(try throttle.knownAddressLastSuccess(account: "ALICE", addressHash: home) == nil)     // exact keys
        try throttle.recordKnownAddress(account: "alice", addressHash: home, at: V.time(10), forgetUpTo: Self.never)
        #expect(try throttle.knownAddressLastSuccess(account: "alice", addressHash: home) == V.time(10))
        #expect(try instance.secondInstance().signInThrottle.knownAddressLastSuccess(account: "alice", addressHash: home) == V.time(10))
        // Recording forgets every account's addresses last used at or before the cutoff, never the one it writes.
        try throttle.recordKnownAddress(account: "carol", addressHash: home, at: V.time(20), forgetUpTo: V.time(20))
        #expect(try throttle.knownAddressLastSuccess(account: "bob", addressHash: office) == nil)
        #expect(try throttle.knownAddressLastSuccess(account: "alice", addressHash: home) == nil)
        #expect(try throttle.knownAddressLastSuccess(account: "carol", addressHash: home) == V.time(20))
    }
}
