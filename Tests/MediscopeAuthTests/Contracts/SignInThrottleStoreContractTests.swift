import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing

/// The `SignInThrottleStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct SignInThrottleStoreContractTests {
    typealias V = ContractValues
    private static let never = V.time(-1_000_000)

    @Test(arguments: AccountBackend.all)
    func nthNewestCountsOnlyFailuresAfterTheGivenTime(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let throttle = instance.stores.signInThrottle
        try throttle.checkReady()
        try throttle.recordFailure(account: "alice", address: "10.0.0.1", at: V.time(0), forgetUpTo: Self.never)
        try throttle.recordFailure(account: "alice", address: "10.0.0.2", at: V.time(100), forgetUpTo: Self.never)
        try throttle.recordFailure(account: "bob", address: "10.0.0.1", at: V.time(200), forgetUpTo: Self.never)

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
        try throttle.recordFailure(account: "alice", address: "10.0.0.1", at: V.time(0), forgetUpTo: Self.never)
        try throttle.recordFailure(account: "bob", address: "10.0.0.2", at: V.time(10), forgetUpTo: Self.never)
        try throttle.recordFailure(account: "carol", address: "10.0.0.3", at: V.time(20), forgetUpTo: V.time(10))
        #expect(try throttle.nthNewestFailure(.account("alice"), n: 1, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(.address("10.0.0.2"), n: 1, after: Self.never) == nil)   // at the cutoff
        #expect(try throttle.nthNewestFailure(.account("carol"), n: 1, after: Self.never) == V.time(20))
    }

    @Test(arguments: AccountBackend.all)
    func clearingAnAccountForgetsItsFailuresOnly(_ backend: AccountBackend) throws {
        let throttle = try backend.make().stores.signInThrottle
        try throttle.recordFailure(account: "alice", address: "10.0.0.1", at: V.time(0), forgetUpTo: Self.never)
        try throttle.recordFailure(account: "bob", address: "10.0.0.1", at: V.time(1), forgetUpTo: Self.never)
        try throttle.clearFailures(account: "alice")
        #expect(try throttle.nthNewestFailure(.account("alice"), n: 1, after: Self.never) == nil)
        #expect(try throttle.nthNewestFailure(.account("bob"), n: 1, after: Self.never) == V.time(1))
        // The cleared rows no longer count for their address either; other accounts' rows still do.
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 1, after: Self.never) == V.time(1))
        #expect(try throttle.nthNewestFailure(.address("10.0.0.1"), n: 2, after: Self.never) == nil)
    }
}
