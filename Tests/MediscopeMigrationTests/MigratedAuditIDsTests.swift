import Foundation
import MediscopeAuth
import MediscopeEncoding
import Testing
@testable import MediscopeMigration

/// The mapping of SQLite's audit ids to `AuditID`s: deterministic, in SQLite's order, timed by the entry.
struct MigratedAuditIDsTests {
    func ids(_ milliseconds: [Int64]) -> [Int64] {
        var mapping = MigratedAuditIDs()
        return milliseconds.map { mapping.next(time: Date(millisecondsSince1970: $0)) }
    }

    @Test func idsCarryTheEntrysMillisecondAndCountWithinIt() {
        let got = ids([1000, 1000, 1001])
        #expect(got == [AuditID.make(milliseconds: 1000, hostTag: 0, sequence: 0), AuditID.make(milliseconds: 1000, hostTag: 0, sequence: 1),
                        AuditID.make(milliseconds: 1001, hostTag: 0, sequence: 0)])
    }

    @Test func aClockThatSteppedBackKeepsSQLitesOrder() {
        let got = ids([2000, 1500, 2000, 2500])
        #expect(got == got.sorted() && Set(got).count == got.count)
        #expect(AuditID.milliseconds(of: got[1]) == 2000)
        #expect(AuditID.milliseconds(of: got[3]) == 2500)
    }

    @Test func moreThan4096EntriesInOneMillisecondBorrowTheNext() {
        let got = ids(Array(repeating: 7, count: 4097) + [8])
        #expect(got == got.sorted() && Set(got).count == got.count)
        #expect(AuditID.milliseconds(of: got[4095]) == 7)
        #expect(AuditID.milliseconds(of: got[4096]) == 8)
        #expect(AuditID.milliseconds(of: got[4097]) == 8)
    }

    @Test func theSameLogGivesTheSameIdsAndALongerLogKeepsThem() {
        let log: [Int64] = [5, 5, 3, 9, 9]
        #expect(ids(log) == ids(log))
        #expect(Array(ids(log + [9, 12]).prefix(log.count)) == ids(log))
    }
}
