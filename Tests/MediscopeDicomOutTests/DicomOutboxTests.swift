import Foundation
import MediscopeStore
import Testing
import TestSupport
@testable import MediscopeDicomOut

/// The queue alone: once per destination and instance, in order per destination, back-off, parking after
/// the limit, requeue in the original order, an unreachable destination left untouched, pruning.
@Suite struct DicomOutboxTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func entry(_ analysis: String, _ object: DicomOutboxEntry.Object, _ part: String) -> DicomOutbox.NewEntry {
        DicomOutbox.NewEntry(analysisId: analysis, organizationId: "org-a", object: object, part: part,
                             sopInstanceUID: "uid-\(analysis)-\(object.rawValue)-\(part)")
    }

    @Test func eachObjectIsQueuedOncePerDestinationAndSurvivesReopening() throws {
        let folder = TemporaryFolder("mediscope-dicom-out")
        let outbox = try DicomOutbox(directory: folder.url)
        let objects = [Self.entry("a1", .sr, "0"), Self.entry("a1", .sc, "r1")]
        #expect(try outbox.enqueue(objects, destinations: ["pacs", "archive"], now: t0) == 4)
        #expect(try outbox.enqueue(objects, destinations: ["pacs"], now: t0) == 0, "queued before: nothing new")
        let reopened = try DicomOutbox(directory: folder.url)
        let due = try reopened.due(destination: "pacs", limit: 10, now: t0)
        #expect(due.map(\.part) == ["0", "r1"] && due.allSatisfy { $0.state == .waiting && $0.organizationId == "org-a" })
        try reopened.markDelivered(due, now: t0)
        #expect(try reopened.enqueue(objects, destinations: ["pacs"], now: t0) == 0, "delivered before: never sent twice")
        let stats = try reopened.stats(destinations: ["pacs", "archive"])
        #expect(stats.map(\.waiting) == [0, 2] && stats.map(\.delivered) == [2, 0])
    }

    @Test func aRefusedObjectBacksOffHoldsTheOrderAndIsParkedAfterTheLimit() throws {
        let outbox = try DicomOutbox(directory: TemporaryFolder("mediscope-dicom-out").url)
        try outbox.enqueue([Self.entry("a1", .sr, "0"), Self.entry("a1", .sr, "2")], destinations: ["pacs"], now: t0)
        let head = try #require(try outbox.due(destination: "pacs", limit: 10, now: t0).first)
        #expect(try outbox.refused(head, error: "0xA900", maxAttempts: 3, retryAt: t0.addingTimeInterval(10), now: t0) == false)
        #expect(try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(5)).isEmpty,
                "the head backs off and the signed SR behind it does not overtake it")
        let again = try #require(try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(10)).first)
        #expect(again.seq == head.seq && again.attempts == 1 && again.lastError == "0xA900")
        #expect(try outbox.refused(again, error: "0xA900", maxAttempts: 3, retryAt: t0.addingTimeInterval(20), now: t0) == false)
        #expect(try outbox.refused(again, error: "0xA900", maxAttempts: 3, retryAt: t0.addingTimeInterval(30), now: t0), "third refusal: parked")
        let next = try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(30))
        #expect(next.map(\.part) == ["2"], "a parked entry lets the rest go on")
        let stats = try #require(try outbox.stats(destinations: ["pacs"]).first)
        #expect(stats.parked == 1 && stats.parkedTotal == 1 && stats.refusedAttempts == 3 && stats.waiting == 1)

        #expect(try outbox.requeue(destination: "other") == 0)
        #expect(try outbox.requeue() == 1)
        let requeued = try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(30))
        #expect(requeued.map(\.part) == ["0", "2"] && requeued.first?.attempts == 0, "back in its original place, attempts reset")
    }

    @Test func anUnreachableDestinationWaitsWithItsEntriesUntouched() throws {
        let outbox = try DicomOutbox(directory: TemporaryFolder("mediscope-dicom-out").url)
        try outbox.enqueue([Self.entry("a1", .sr, "0")], destinations: ["pacs", "archive"], now: t0)
        #expect(try outbox.destination("pacs", reachable: false, error: "connection refused", now: t0) { n in Double(10 * n) } == 1)
        #expect(try outbox.destination("pacs", reachable: false, error: "connection refused", now: t0) { n in Double(10 * n) } == 2)
        #expect(try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(19)).isEmpty, "backs off 2 x 10 s")
        #expect(try outbox.due(destination: "archive", limit: 10, now: t0).count == 1, "another destination is not held")
        let stats = try #require(try outbox.stats(destinations: ["pacs"]).first)
        #expect(stats.reachable == false && stats.lastError == "connection refused" && stats.unreachableAttempts == 2)
        #expect(stats.retryAt == t0.addingTimeInterval(20) && stats.waiting == 1 && stats.parked == 0)
        let due = try outbox.due(destination: "pacs", limit: 10, now: t0.addingTimeInterval(20))
        #expect(due.count == 1 && due[0].attempts == 0, "an outage is not the object's refusal")
        try outbox.destination("pacs", reachable: true, now: t0.addingTimeInterval(20))
        let back = try #require(try outbox.stats(destinations: ["pacs"]).first)
        #expect(back.reachable == true && back.lastError == nil && back.retryAt == nil && back.since == t0.addingTimeInterval(20))
    }

    @Test func settledEntriesArePrunedAfterTheirTime() throws {
        let outbox = try DicomOutbox(directory: TemporaryFolder("mediscope-dicom-out").url)
        try outbox.enqueue([Self.entry("a1", .sr, "0"), Self.entry("a2", .sr, "0"), Self.entry("a3", .sr, "0")], destinations: ["pacs"], now: t0)
        let due = try outbox.due(destination: "pacs", limit: 10, now: t0)
        try outbox.markDelivered([due[0]], now: t0)
        try outbox.markGone(due[1], reason: "the analysis was deleted", now: t0.addingTimeInterval(100))
        #expect(try outbox.prune(settledBefore: t0.addingTimeInterval(50)) == 1)
        #expect(try outbox.entries(destination: "pacs").map(\.state) == [.gone, .waiting])
        #expect(try outbox.stats(destinations: ["pacs"]).first?.gone == 1)
    }
}
