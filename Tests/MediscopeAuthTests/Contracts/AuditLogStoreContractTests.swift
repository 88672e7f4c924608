import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing
import TestSupport

/// The `AuditLogStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct AuditLogStoreContractTests {
    typealias V = ContractValues

    private static func entry(_ seconds: Double, actor: String? = "U1", org: String? = "org-a", action: String,
                              record: String? = nil, outcome: String = "success") -> AuditEntry {
        AuditEntry(time: V.time(seconds), actorUserId: actor, actorUsername: actor.map { "user-\($0)" },
                   organizationId: org, action: action, recordId: record, address: "10.0.0.1", outcome: outcome)
    }

    @Test(arguments: AccountBackend.all)
    func appendGivesIncreasingIdsAndKeepsEveryField(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let log = instance.stores.auditLog
        try log.checkReady()
        let other = try instance.secondInstance().auditLog
        var ids: [Int64] = []
        for i in 0..<6 {
            // Alternating writers: ids still increase in append order.
            ids.append(try (i.isMultiple(of: 2) ? log : other).append(Self.entry(Double(i), action: "a.\(i)", record: "R\(i)")))
        }
        #expect(ids.allSatisfy { $0 > 0 })
        #expect(ids == ids.sorted() && Set(ids).count == ids.count)
        let all = try log.entries(AuditFilter())
        #expect(all.map(\.id) == ids.map(Optional.some))
        var expected = Self.entry(3, action: "a.3", record: "R3")
        expected.id = ids[3]
        #expect(all[3] == expected)
        var anonymous = Self.entry(9, actor: nil, org: nil, action: "session.create", outcome: "failure")
        anonymous.id = try log.append(anonymous)
        #expect(try log.entries(AuditFilter()).last == anonymous)
    }

    @Test(arguments: AccountBackend.all)
    func filtersOrderAndPaging(_ backend: AccountBackend) throws {
        let log = try backend.make().stores.auditLog
        let entries = [
            Self.entry(0, action: "session.create"),
            Self.entry(60, action: "analysis.create", record: "R1"),
            Self.entry(120, actor: "U2", action: "analysis.view", record: "R1"),
            Self.entry(180, actor: "U2", org: "org-b", action: "analysis.view", record: "R2", outcome: "not_found"),
            Self.entry(240, action: "analysis", record: "R1"),
            Self.entry(300, action: "analysisx.view", record: "R1"),
        ]
        let ids = try entries.map { try log.append($0) }
        func query(_ change: (inout AuditFilter) -> Void) throws -> [Int64] {
            var filter = AuditFilter()
            change(&filter)
            return try log.entries(filter).compactMap(\.id)
        }
        #expect(try query { $0.organizationId = "org-b" } == [ids[3]])
        #expect(try query { $0.actorUserId = "U2" } == [ids[2], ids[3]])
        #expect(try query { $0.action = "analysis." } == [ids[1], ids[2], ids[3]])
        #expect(try query { $0.action = "analysis" } == [ids[4]])
        #expect(try query { $0.recordId = "R1"; $0.outcome = "success" } == [ids[1], ids[2], ids[4], ids[5]])
        #expect(try query { $0.outcome = "not_found" } == [ids[3]])
        #expect(try query { $0.since = V.time(120); $0.until = V.time(240) } == [ids[2], ids[3]])
        #expect(try query { $0.afterId = ids[3] } == [ids[4], ids[5]])
        #expect(try query { $0.beforeId = ids[2] } == [ids[0], ids[1]])
        #expect(try query { $0.limit = 2 } == [ids[0], ids[1]])
        #expect(try query { $0.newestFirst = true; $0.limit = 2 } == [ids[5], ids[4]])
        #expect(try query { $0.recordId = "R1"; $0.newestFirst = true; $0.beforeId = ids[5] } == [ids[4], ids[2], ids[1]])
        #expect(try query { $0.action = "nothing." }.isEmpty)
    }
}
