import Foundation
import GRDB
import Testing
@testable import MediscopeAuth

@Suite struct AccountThrottleTests {
    private func policy(account: Int = 3, address: Int = 5) -> AccountPolicy {
        var policy = AccountPolicy()
        policy.maxFailuresPerAccount = account
        policy.maxFailuresPerAddress = address
        policy.failureWindowSeconds = 900
        return policy
    }

    @Test func perAccountLimitAndRecovery() throws {
        let folder = AccountsFolder()
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy())
        try store.recordSignInFailure(username: "alice", address: "10.0.0.1")
        clock.advance(100)
        try store.recordSignInFailure(username: "Alice", address: "10.0.0.2")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == nil)
        clock.advance(100)
        try store.recordSignInFailure(username: "alice", address: "10.0.0.3")

        // Third failure within the window: the oldest leaves it 900 s after it happened, 700 s from now.
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == 700)
        #expect(try store.signInRetryAfter(username: "ALICE", address: "192.168.1.1") == 700)   // any address
        #expect(try store.signInRetryAfter(username: "bob", address: "10.0.0.1") == nil)       // other accounts fine

        clock.advance(699.5)
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == 1)
        clock.advance(0.5)
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == nil)
    }

    @Test func perAddressLimit() throws {
        let folder = AccountsFolder()
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 4))
        for name in ["a1x", "a2x", "a3x", "a4x"] {
            try store.recordSignInFailure(username: name, address: "10.0.0.66")
            clock.advance(10)
        }
        let wait = try #require(try store.signInRetryAfter(username: "newcomer", address: "10.0.0.66"))
        #expect(wait == 900 - 40)
        #expect(try store.signInRetryAfter(username: "newcomer", address: "10.0.0.67") == nil)
        #expect(try store.signInRetryAfter(username: "a1x", address: "10.0.0.67") == nil)
        clock.advance(Double(wait))
        #expect(try store.signInRetryAfter(username: "newcomer", address: "10.0.0.66") == nil)
    }

    @Test func goodSignInClearsTheAccountsFailuresAndOldRowsArePruned() throws {
        let folder = AccountsFolder()
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 5))
        for _ in 0..<3 { try store.recordSignInFailure(username: "alice", address: "10.0.0.1") }
        let retry = try #require(try store.signInRetryAfter(username: "alice", address: "10.0.0.1"))
        #expect(retry > 0 && retry <= 900)
        try store.clearSignInFailures(username: "ALICE")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == nil)

        try store.recordSignInFailure(username: "bob", address: "10.0.0.2")
        clock.advance(901)
        try store.recordSignInFailure(username: "carol", address: "10.0.0.3")
        let names = try folder.rawConnection().read { try String.fetchAll($0, sql: "SELECT username FROM sign_in_failures") }
        #expect(names == ["carol"])
    }
}

@Suite struct AccountAuditTests {
    private func entry(_ clock: AccountsClock, actor: String? = "U1", org: String? = "org-a", action: String,
                       record: String? = nil, outcome: String = "success") -> AuditEntry {
        AuditEntry(time: clock.now, actorUserId: actor, actorUsername: actor.map { "user-\($0)" }, organizationId: org,
                   action: action, recordId: record, address: "10.0.0.1", outcome: outcome)
    }

    @Test func appendFilterAndPage() throws {
        let folder = AccountsFolder()
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        let start = clock.now
        var ids: [Int64] = []
        var entries = [
            entry(clock, action: "session.create"),
            entry(clock, action: "analysis.create", record: "R1"),
            entry(clock, actor: "U2", action: "analysis.view", record: "R1"),
            entry(clock, actor: "U2", org: "org-b", action: "analysis.view", record: "R2", outcome: "not_found"),
            entry(clock, actor: nil, org: nil, action: "session.create", outcome: "failure"),
            entry(clock, action: "analysis", record: "R1"),
            entry(clock, action: "analysisx.view", record: "R1"),
            entry(clock, action: "user.disable", record: "U2"),
        ]
        for i in entries.indices {
            entries[i].time = clock.now          // one minute apart
            ids.append(try store.audit(entries[i]))
            clock.advance(60)
        }
        #expect(ids == ids.sorted() && Set(ids).count == ids.count)

        let all = try store.auditEntries(AuditFilter())
        #expect(all.map(\.id) == ids.map(Optional.some))
        var expected = entries[1]
        expected.id = ids[1]
        #expect(all[1] == expected)

        func query(_ change: (inout AuditFilter) -> Void) throws -> [Int64] {
            var filter = AuditFilter()
            change(&filter)
            return try store.auditEntries(filter).compactMap(\.id)
        }
        #expect(try query { $0.organizationId = "org-b" } == [ids[3]])
        #expect(try query { $0.actorUserId = "U2" } == [ids[2], ids[3]])
        #expect(try query { $0.action = "analysis." } == [ids[1], ids[2], ids[3]])
        #expect(try query { $0.action = "analysis.view" } == [ids[2], ids[3]])
        #expect(try query { $0.action = "analysis" } == [ids[5]])
        #expect(try query { $0.action = "analysis.view"; $0.organizationId = "org-a" } == [ids[2]])
        #expect(try query { $0.recordId = "R1" } == [ids[1], ids[2], ids[5], ids[6]])
        #expect(try query { $0.outcome = "failure" } == [ids[4]])
        #expect(try query { $0.since = start.addingTimeInterval(120); $0.until = start.addingTimeInterval(240) } == [ids[2], ids[3]])
        #expect(try query { $0.action = "nothing." }.isEmpty)

        // Paging: limit + afterId walks everything once, oldest first.
        var seen: [Int64] = []
        var after: Int64? = nil
        while true {
            let page = try query { $0.limit = 3; $0.afterId = after }
            if page.isEmpty { break }
            #expect(page.count <= 3)
            seen += page
            after = page.last
        }
        #expect(seen == ids)

        // Newest first (the dashboard): limit + beforeId walks everything once, newest first, filters still apply.
        var newest: [Int64] = []
        var before: Int64? = nil
        while true {
            let page = try query { $0.limit = 2; $0.newestFirst = true; $0.beforeId = before }
            if page.isEmpty { break }
            newest += page
            before = page.last
        }
        #expect(newest == ids.reversed())
        #expect(try query { $0.recordId = "R1"; $0.newestFirst = true; $0.beforeId = ids[6] } == [ids[5], ids[2], ids[1]])
        #expect(try query { $0.limit = 0 }.count == 1)   // clamped to 1...1000

        #expect { try store.audit(entry(clock, action: "")) } throws: { AuthError.isKind(.invalid, $0) }
        #expect(try store.auditEntries(AuditFilter()).count == entries.count)
    }

    @Test func triggersRefuseUpdateAndDelete() throws {
        let folder = AccountsFolder()
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock)
        let id = try store.audit(entry(clock, action: "user.disable", outcome: "success"))
        let raw = try folder.rawConnection()
        #expect(throws: DatabaseError.self) {
            try raw.write { try $0.execute(sql: "UPDATE audit_log SET outcome = 'denied' WHERE id = ?", arguments: [id]) }
        }
        #expect(throws: DatabaseError.self) {
            try raw.write { try $0.execute(sql: "DELETE FROM audit_log WHERE id = ?", arguments: [id]) }
        }
        #expect(throws: DatabaseError.self) {
            try raw.write { try $0.execute(sql: "DELETE FROM audit_log") }
        }
        let outcome = try raw.read { try String.fetchOne($0, sql: "SELECT outcome FROM audit_log WHERE id = ?", arguments: [id]) }
        #expect(outcome == "success")
        #expect(try store.auditEntries(AuditFilter()).count == 1)
        // Inserts still work after the refused statements.
        let next = try store.audit(entry(clock, action: "user.enable"))
        #expect(next > id)
    }
}
