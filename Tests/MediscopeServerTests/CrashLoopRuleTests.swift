import Foundation
import Testing
@testable import MediscopeServer

/// The crash-loop rule: only crashes without a request count, and a loop backs off instead of stopping.
@Suite struct CrashLoopRuleTests {
    @Test func crashesUpToTheLimitOnlyGetTheQuickBackOff() {
        var rule = CrashLoopRule(limit: 3, window: 60, maxDelay: 30)
        for (i, expected) in [0.1, 0.2, 0.4].enumerated() {
            let outcome = rule.crashed(pool: 0, at: Double(i), lived: 0.5)
            #expect(outcome.delay == expected && !outcome.began)
        }
        #expect(!rule.isLooping)
        #expect(rule.crashed(pool: 1, at: 3, lived: 30).delay == 1, "the fourth in the window starts a loop")
        #expect(rule.isLooping && rule.longestDelay == 1)
    }

    @Test func aLoopDoublesTheCrashingPoolsDelayUpToTheMaximum() {
        var rule = CrashLoopRule(limit: 1, window: 60, maxDelay: 5)
        #expect(rule.crashed(pool: 0, at: 0, lived: 10) == (0, false))
        let first = rule.crashed(pool: 0, at: 1, lived: 10)
        #expect(first.delay == 1 && first.began)
        let delays = (2..<7).map { rule.crashed(pool: 0, at: Double($0), lived: 10).delay }
        #expect(delays == [2, 4, 5, 5, 5])
        let other = rule.crashed(pool: 1, at: 7, lived: 10)
        #expect(other.delay == 1 && !other.began, "another pool crashing in the same window backs off from 1 s")
    }

    @Test func crashesOutsideTheWindowDoNotAddUp() {
        var rule = CrashLoopRule(limit: 3, window: 10, maxDelay: 60)
        for t in stride(from: 0.0, to: 100, by: 4) { _ = rule.crashed(pool: 0, at: t, lived: 5) }
        #expect(!rule.isLooping, "one crash every 4 s is never more than 3 within 10 s")
        _ = rule.crashed(pool: 0, at: 97, lived: 5)
        #expect(rule.isLooping, "a fourth within 10 s is")
    }

    @Test func theLoopEndsOnceEveryPoolIsWholeAndQuietForTheWindow() {
        var rule = CrashLoopRule(limit: 0, window: 10, maxDelay: 60)
        _ = rule.crashed(pool: 0, at: 0, lived: 5)
        _ = rule.crashed(pool: 1, at: 4, lived: 5)
        #expect(!rule.settle(at: 9) { _ in true }, "pool 0 crashed 9 s ago")
        #expect(!rule.settle(at: 12) { _ in true }, "pool 1 is still within its window")
        #expect(!rule.settle(at: 20) { $0 != 1 }, "pool 1 is not whole")
        #expect(rule.isLooping && rule.longestDelay == 1)
        #expect(rule.settle(at: 20) { _ in true })
        #expect(!rule.isLooping && rule.longestDelay == 0)
        #expect(!rule.settle(at: 21) { _ in true }, "ended once")
    }

    @Test func aNormalExitEndsTheQuickBackOff() {
        var rule = CrashLoopRule(limit: 100, window: 60, maxDelay: 60)
        #expect(rule.crashed(pool: 0, at: 0, lived: 0.1).delay == 0.1)
        #expect(rule.crashed(pool: 0, at: 1, lived: 0.1).delay == 0.2)
        rule.endedNormally(pool: 0)
        #expect(rule.crashed(pool: 0, at: 2, lived: 0.1).delay == 0.1)
    }
}
