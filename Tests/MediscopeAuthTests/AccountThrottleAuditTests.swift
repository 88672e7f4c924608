import Foundation
import GRDB
import Testing
import TestSupport
@testable import MediscopeAuth

@Suite struct AccountThrottleTests {
    private func policy(account: Int = 3, address: Int = 5) -> AccountPolicy {
        var policy = AccountPolicy()
        policy.maxFailuresPerAccount = account
        policy.maxFailuresPerAddress = address
        policy.failureWindowSeconds = 900
        return policy
    }

    /// The issue: wrong passwords from many addresses must not keep the owner out of an address they
    /// signed in from before (before, every address waited the whole window: 900 s, again and again).
    @Test func failuresFromElsewhereNeverLockTheOwnerOutOfAKnownAddress() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 5))
        try store.recordSignInSuccess(username: "alice", address: "10.0.0.1")
        for round in 0..<5 {                                     // an attacker keeps it up, round after round
            for n in 2...4 { try store.recordSignInFailure(username: "alice", address: "10.0.1.\(round * 3 + n)") }
            #expect(try store.signInRetryAfter(username: " ALICE ", address: "10.0.0.1") == nil, "round \(round)")
            clock.advance(300)
        }
    }

    @Test func addressesTheAccountNeverUsedAreSlowedNotHeldForTheWindow() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 5))
        try store.recordSignInFailure(username: "alice", address: "10.0.1.1")
        clock.advance(100)
        try store.recordSignInFailure(username: "alice", address: "10.0.1.2")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.1.9") == nil)
        clock.advance(100)
        try store.recordSignInFailure(username: "alice", address: "10.0.1.3")
        // Three failures from anywhere: a new address may try once per 900 / 3 = 300 s after the newest.
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.1.9") == 300)
        #expect(try store.signInRetryAfter(username: "ALICE", address: "192.168.1.1") == 300)
        #expect(try store.signInRetryAfter(username: "bob", address: "10.0.1.9") == nil)      // other accounts fine
        clock.advance(299.5)
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.1.9") == 1)
        clock.advance(0.5)
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.1.9") == nil)
        try store.recordSignInFailure(username: "alice", address: "10.0.1.9")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.1.10") == 300, "paced, one try at a time")
    }

    @Test func oneAddressFailingForOneAccountWaitsForThatAccountOnly() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 5))
        try store.recordSignInSuccess(username: "alice", address: "10.0.0.1")
        try store.recordSignInSuccess(username: "alice", address: "10.0.0.2")
        for _ in 0..<3 {
            try store.recordSignInFailure(username: "alice", address: "10.0.0.1")   // the owner mistyping, three times
            clock.advance(10)
        }
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == 900 - 30, "a known address counts its own failures")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.2") == nil, "another known address is free")
        #expect(try store.signInRetryAfter(username: "bob", address: "10.0.0.1") == nil, "another account from there too")
    }

    @Test func perAddressLimit() throws {
        let folder = TemporaryFolder("mediscope-accounts")
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

    @Test func aGoodSignInClearsThatAddressesFailuresOnlyAndOldRowsArePruned() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy(account: 3, address: 5))
        for _ in 0..<3 { try store.recordSignInFailure(username: "alice", address: "10.0.0.1") }
        try store.recordSignInFailure(username: "alice", address: "10.0.0.2")
        let retry = try #require(try store.signInRetryAfter(username: "alice", address: "10.0.0.1"))
        #expect(retry > 0 && retry <= 900)
        try store.recordSignInSuccess(username: "ALICE", address: "10.0.0.1")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.0.0.1") == nil)
        let raw = try folder.rawConnection()
        #expect(try raw.read { try String.fetchAll($0, sql: "SELECT address FROM sign_in_failures") } == ["10.0.0.2"])

        try store.recordSignInFailure(username: "bob", address: "10.0.0.2")
        clock.advance(901)
        try store.recordSignInFailure(username: "carol", address: "10.0.0.3")
        #expect(try raw.read { try String.fetchAll($0, sql: "SELECT username FROM sign_in_failures") } == ["carol"])
    }

    @Test func knownAddressesAreHashedAndForgottenAfterTheirTime() throws {
        let folder = TemporaryFolder("mediscope-accounts")
        let clock = AccountsClock()
        var policy = policy(account: 3, address: 50)
        policy.knownAddressSeconds = 30 * 24 * 3600
        let store = try AccountsFixtures.store(folder, clock: clock, policy: policy)
        try store.recordSignInSuccess(username: "alice", address: "10.9.8.7")
        #expect(folder.allDatabaseBytes().range(of: Data("10.9.8.7".utf8)) == nil, "the address is kept as a hash only")
        func failThreeTimes() throws {
            for n in 1...3 { try store.recordSignInFailure(username: "alice", address: "10.0.1.\(n)") }
        }
        try failThreeTimes()
        #expect(try store.signInRetryAfter(username: "alice", address: "10.9.8.7") == nil)
        #expect(try store.signInRetryAfter(username: "bob", address: "10.9.8.7") == nil)
        clock.advance(30 * 24 * 3600)                               // the known address is forgotten
        try failThreeTimes()
        #expect(try store.signInRetryAfter(username: "alice", address: "10.9.8.7") == 300)
        // An address known to another account is not known to this one.
        try store.recordSignInSuccess(username: "bob", address: "10.5.5.5")
        #expect(try store.signInRetryAfter(username: "alice", address: "10.5.5.5") == 300)
        #expect(try folder.rawConnection().read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sign_in_known_addresses") } == 1,
                "the expired row was pruned by the next success")
    }
}

@Suite struct AccountAuditTests {
    private func entry(_ clock: AccountsClock, actor: String? = "U1", org: String? = "org-a", action: String,
                       record: String? = nil, outcome: String = "success") -> AuditEntry {
        AuditEntry(time: clock.now, actorUserId: actor, actorUsername: actor.map { "user-\($0)" }, organizationId: org,
                   action: action, recordId: record, address: "10.0.0.1", outcome: outcome)
    }

    @Test func appendFilterAndPage() throws {
        let folder = TemporaryFolder("mediscope-accounts")
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
        let folder = TemporaryFolder("mediscope-accounts")
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
