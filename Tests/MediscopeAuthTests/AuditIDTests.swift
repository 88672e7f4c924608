import Foundation
import MediscopeEncoding
import Testing
import TestSupport
@testable import MediscopeAuth

@Suite struct AuditIDTests {
    @Test func layoutIsMillisecondsTagAndSequence() {
        let clock = AccountsClock(Date(millisecondsSince1970: 1_750_000_000_123))
        let ids = AuditID.Generator(hostTag: 0xA5, now: clock.closure)
        let id = ids.next()
        #expect(id > 0)
        #expect(AuditID.milliseconds(of: id) == 1_750_000_000_123)
        #expect((id >> 12) & 0xff == 0xA5)
        #expect(id & 0xfff < 2048, "each millisecond starts in the low half of the sequence")
        #expect(AuditID.make(milliseconds: 5, hostTag: 1, sequence: 2) == 5 << 20 | 1 << 12 | 2)
    }

    @Test func strictlyIncreasingWhenTheClockStandsStillOrGoesBack() {
        let clock = AccountsClock(Date(millisecondsSince1970: 1_750_000_000_000))
        let ids = AuditID.Generator(hostTag: 7, now: clock.closure)
        var made: [Int64] = []
        // More than a whole sequence (4096) in one millisecond, then the clock steps back a minute.
        for _ in 0..<5000 { made.append(ids.next()) }
        clock.advance(-60)
        for _ in 0..<10 { made.append(ids.next()) }
        clock.advance(120)
        made.append(ids.next())
        #expect(zip(made, made.dropFirst()).allSatisfy { $0 < $1 })
        #expect(made.allSatisfy { ($0 >> 12) & 0xff == 7 }, "the host tag never changes, so hosts never borrow each other's ids")
        #expect(AuditID.milliseconds(of: made[4999]) == 1_750_000_000_001, "the sequence ran out: the next millisecond is borrowed")
        #expect(AuditID.milliseconds(of: made.last!) == 1_750_000_060_000)
    }

    @Test func uniqueAcrossThreadsOfOneProcess() {
        let ids = AuditID.Generator()
        let perThread = (0..<8).map { _ in LockedBox<[Int64]>([]) }
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for _ in 0..<2000 { perThread[thread].mutate { $0.append(ids.next()) } }
        }
        let all = perThread.flatMap(\.value)
        #expect(perThread.allSatisfy { $0.value == $0.value.sorted() })
        #expect(Set(all).count == all.count)
    }

    @Test func idsFollowTheWallClockAcrossGenerators() {
        // Two "hosts" on the same clock: a later millisecond always gives a larger id.
        let clock = AccountsClock(Date(millisecondsSince1970: 1_750_000_000_000))
        let a = AuditID.Generator(hostTag: 255, now: clock.closure), b = AuditID.Generator(hostTag: 0, now: clock.closure)
        let first = a.next()
        clock.advance(0.001)
        #expect(b.next() > first)
    }
}

/// `AuditFilter.matches` selects exactly what the SQLite store's `entries` returns.
@Suite struct AuditFilterMatchesTests {
    @Test func agreesWithTheSQLiteStore() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let log = try AccountStores.sqlite(directory: folder.url).auditLog
        let start = Date(millisecondsSince1970: 1_750_000_000_000)
        let actions = ["session.create", "analysis.create", "analysis.view", "analysis", "analysisx.view", "analysis.", "a.b.c", "é.x"]
        var stored: [AuditEntry] = []
        for i in 0..<64 {
            var entry = AuditEntry(
                time: start.addingTimeInterval(Double(i % 16) * 60), actorUserId: i % 3 == 0 ? nil : "U\(i % 3)",
                actorUsername: nil, organizationId: i % 4 == 0 ? nil : "org-\(i % 2)", action: actions[i % actions.count],
                recordId: i % 5 == 0 ? nil : "R\(i % 5)", address: "10.0.0.\(i)", outcome: ["success", "denied", "not_found"][i % 3])
            entry.id = try log.append(entry)
            stored.append(entry)
        }
        var filters: [AuditFilter] = []
        func add(_ change: (inout AuditFilter) -> Void) {
            var f = AuditFilter()
            f.limit = 1000
            change(&f)
            filters.append(f)
        }
        add { _ in }
        for org in ["org-0", "org-1", "org-9"] { add { $0.organizationId = org } }
        for actor in ["U1", "U2"] { add { $0.actorUserId = actor } }
        for action in actions + ["analysis.vi", ".", "a.", "a.b.", "e\u{301}.x", "é."] { add { $0.action = action } }
        for record in ["R1", "R4"] { add { $0.recordId = record } }
        for outcome in ["denied", "success"] { add { $0.outcome = outcome } }
        add { $0.since = start.addingTimeInterval(120) }
        add { $0.until = start.addingTimeInterval(300) }
        add { $0.since = start.addingTimeInterval(60); $0.until = start.addingTimeInterval(60.001) }
        add { $0.afterId = stored[10].id }
        add { $0.beforeId = stored[40].id; $0.afterId = stored[3].id }
        add { $0.organizationId = "org-1"; $0.action = "analysis."; $0.outcome = "success"; $0.since = start.addingTimeInterval(180) }
        add { $0.actorUserId = "U2"; $0.recordId = "R2"; $0.beforeId = stored[50].id; $0.newestFirst = true }
        for filter in filters {
            let expected = try log.entries(filter).compactMap(\.id)
            var mine = stored.filter(filter.matches).compactMap(\.id)
            if filter.newestFirst { mine.reverse() }
            #expect(mine == expected, "\(filter)")
        }
        #expect(filters.contains { try! log.entries($0).count > 0 && log.entries($0).count < stored.count })
        // An entry not stored yet (no id) cannot pass an id bound.
        var pending = stored[0]
        pending.id = nil
        var bounded = AuditFilter()
        bounded.afterId = 0
        #expect(!bounded.matches(pending) && AuditFilter().matches(pending))
    }
}
