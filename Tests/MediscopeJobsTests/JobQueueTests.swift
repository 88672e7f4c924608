import Foundation
import MediscopeStore
import Testing
import TestSupport
@testable import MediscopeJobs

@Suite struct JobQueueTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func enqueueIsIdempotentAndJobsSurviveReopening() throws {
        let folder = TemporaryFolder("mediscope-jobs")
        let queue = try JobQueue(directory: folder.url)
        #expect(try queue.enqueue(kind: "k", key: "A", organizationId: "o1"))
        #expect(try queue.enqueue(kind: "k", key: "A", organizationId: "o1") == false, "one job per kind and key")
        let reopened = try JobQueue(directory: folder.url)
        #expect(try reopened.contains(kind: "k", key: "A"))
        #expect(try reopened.stats(now: t0).queued == 1)
    }

    @Test func aClaimedJobIsLeasedAndClaimedAgainWhenItsProcessDies() throws {
        let folder = TemporaryFolder("mediscope-jobs")
        let queue = try JobQueue(directory: folder.url)
        try queue.enqueue(kind: "k", key: "A", organizationId: "o1")
        let first = try #require(try queue.claim(kind: "k", owner: 1, lease: 30, maxRunningPerOrganization: 5, minSecondsBetweenStarts: 0, now: t0))
        #expect(first.attempts == 1)
        #expect(try queue.claim(kind: "k", owner: 2, lease: 30, maxRunningPerOrganization: 5, minSecondsBetweenStarts: 0, now: t0) == nil,
                "leased: nobody else takes it")
        #expect(try queue.stats(now: t0).running == 1)
        let again = try #require(try queue.claim(kind: "k", owner: 2, lease: 30, maxRunningPerOrganization: 5, minSecondsBetweenStarts: 0,
                                                 now: t0.addingTimeInterval(31)), "the lease ran out")
        #expect(again.id == first.id && again.attempts == 2)
        try queue.finish(again, outcome: "llm", promptTokens: 10, completionTokens: 5, now: again.enqueuedAt.addingTimeInterval(3))
        let stats = try queue.stats(now: t0.addingTimeInterval(40))
        #expect(stats.queued == 0 && stats.running == 0 && stats.done == ["llm": 1] && stats.promptTokens == 10 && stats.completionTokens == 5)
        #expect(stats.latencyBuckets[String(5.0)] == 1 && stats.latencySumSeconds == 3)
    }

    @Test func organisationsGetTheirShareAndTheirRateLimit() throws {
        let folder = TemporaryFolder("mediscope-jobs")
        let queue = try JobQueue(directory: folder.url)
        for key in ["A1", "A2", "A3"] { try queue.enqueue(kind: "k", key: key, organizationId: "busy") }
        try queue.enqueue(kind: "k", key: "B1", organizationId: "quiet")
        func claim(_ at: Double, max: Int = 1, gap: Double = 0) throws -> Job? {
            try queue.claim(kind: "k", owner: 1, lease: 60, maxRunningPerOrganization: max, minSecondsBetweenStarts: gap, now: t0.addingTimeInterval(at))
        }
        #expect(try claim(0)?.key == "A1")
        #expect(try claim(0)?.key == "B1", "the busy organisation has its one running job: the quiet one goes next")
        #expect(try claim(0) == nil)
        // A rate limit: one start per organisation every 10 s.
        let folder2 = TemporaryFolder("mediscope-jobs")
        let limited = try JobQueue(directory: folder2.url)
        for key in ["A1", "A2"] { try limited.enqueue(kind: "k", key: key, organizationId: "busy") }
        func claimLimited(_ at: Double) throws -> Job? {
            try limited.claim(kind: "k", owner: 1, lease: 1, maxRunningPerOrganization: 5, minSecondsBetweenStarts: 10, now: t0.addingTimeInterval(at))
        }
        let a1 = try #require(try claimLimited(0))
        try limited.finish(a1, outcome: "template")
        #expect(try claimLimited(5) == nil, "too soon after the last start")
        #expect(try claimLimited(10.5)?.key == "A2")
    }

    @Test func aRetriedJobWaitsAndIsCounted() throws {
        let folder = TemporaryFolder("mediscope-jobs")
        let queue = try JobQueue(directory: folder.url)
        try queue.enqueue(kind: "k", key: "A", organizationId: "o")
        let job = try #require(try queue.claim(kind: "k", owner: 1, lease: 60, maxRunningPerOrganization: 1, minSecondsBetweenStarts: 0, now: t0))
        try queue.retry(job, at: t0.addingTimeInterval(7), error: "rateLimited (HTTP 429)")
        #expect(try queue.claim(kind: "k", owner: 1, lease: 60, maxRunningPerOrganization: 1, minSecondsBetweenStarts: 0,
                                now: t0.addingTimeInterval(6)) == nil, "not before Retry-After")
        #expect(try queue.claim(kind: "k", owner: 1, lease: 60, maxRunningPerOrganization: 1, minSecondsBetweenStarts: 0,
                                now: t0.addingTimeInterval(7))?.attempts == 2)
        #expect(try queue.stats(now: t0).failedAttempts == 1)
    }
}
