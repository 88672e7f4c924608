import FirestoreTestKit
import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeFirestore
import Testing
import TestSupport
@testable import MediscopeFirestoreStore

/// What the Firestore account stores promise beyond the shared contract: races between hosts, the
/// guard documents, the audit log's document names and `insert`, paging with the time filter.
@Suite(.firestoreEmulator) struct FirestoreAccountStoreTests {
    typealias V = ContractValues

    /// A fresh project (empty database) and a way to open more "hosts" on it.
    private func project() throws -> (host: @Sendable () -> FirestoreClient, emulator: FirestoreEmulator) {
        let emulator = try SharedEmulator.get()
        let id = "acct-\(UUID().uuidString.prefix(8).lowercased())"
        return ({ emulator.client(projectId: id) }, emulator)
    }

    /// Runs `body` on `count` threads released together (real threads, not a pool the size of the
    /// cores, so every call is in flight at once) and returns what each gave.
    private func race<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let results = (0..<count).map { _ in LockedBox<T?>(nil) }
        let ready = DispatchGroup(), done = DispatchGroup()
        let gate = DispatchSemaphore(value: 0)
        for i in 0..<count {
            ready.enter()
            done.enter()
            Thread {
                ready.leave()
                gate.wait()
                let value = body(i)
                results[i].mutate { $0 = value }
                done.leave()
            }.start()
        }
        ready.wait()
        for _ in 0..<count { gate.signal() }
        done.wait()
        return results.map { $0.value! }
    }

    /// Runs `body` for 0..<count on a few threads (bulk set-up, not a race).
    private func parallel(_ count: Int, _ body: @escaping @Sendable (Int) throws -> Void) {
        let failures = LockedBox<[String]>([])
        DispatchQueue.concurrentPerform(iterations: count) { i in
            do { try body(i) } catch { failures.mutate { $0.append("\(error)") } }
        }
        #expect(failures.value.isEmpty, "\(failures.value.prefix(3))")
    }

    @Test func hostsRacingForOneUsernameLeaveExactlyOneWinner() throws {
        let (host, _) = try project()
        let candidates = (0..<6).map { i in V.user("alice", org: "org-\(i)", at: Double(i)) }
        let outcomes = race(candidates.count) { i -> String in
            do {
                try FirestoreUserStore(client: host()).insert(candidates[i], passwordHash: "h")
                return "won"
            } catch {
                return (error as? AuthError)?.kind == .conflict ? "conflict" : "\(error)"
            }
        }
        #expect(outcomes.filter { $0 == "won" }.count == 1)
        #expect(outcomes.filter { $0 == "conflict" }.count == candidates.count - 1, "\(outcomes)")
        let users = FirestoreUserStore(client: host())
        let winner = try #require(candidates.indices.first { outcomes[$0] == "won" })
        #expect(try users.userCount() == 1)
        #expect(try users.user(username: "alice") == candidates[winner])
        // The guard names the winner, and only the winner's organisation was made.
        let client = host()
        let usernameGuard = try #require(try client.get(client.name(FirestoreUserStore.usernames, "alice")))
        #expect(usernameGuard.fields["userId"] == .string(candidates[winner].id))
        for (i, candidate) in candidates.enumerated() {
            #expect(try users.organizationName(id: candidate.organizationId) == (i == winner ? candidate.organizationId : nil))
        }
    }

    @Test func hostsRacingToLinkOneFirebaseUidLeaveExactlyOneLink() throws {
        let (host, _) = try project()
        let users = (0..<4).map { V.user("user\($0)") }
        for user in users { try FirestoreUserStore(client: host()).insert(user, passwordHash: nil) }
        let outcomes = race(users.count) { i -> Bool in
            (try? FirestoreUserStore(client: host()).update(userId: users[i].id, .firebaseUID("uid-1"))) != nil
        }
        #expect(outcomes.filter { $0 }.count == 1)
        let linked = try #require(try FirestoreUserStore(client: host()).user(firebaseUID: "uid-1"))
        #expect(linked.id == users[outcomes.firstIndex(of: true)!].id)
        let client = host()
        #expect(try client.get(client.name(FirestoreUserStore.firebaseUids, "uid-1"))?.fields["userId"] == .string(linked.id))
    }

    @Test func concurrentUpdatesOfOneUserAreAllApplied() throws {
        let (host, _) = try project()
        let alice = V.user("alice")
        try FirestoreUserStore(client: host()).insert(alice, passwordHash: "h")
        let changes: [UserChange] = [.role(.admin), .disabled(true), .passwordHash("new"), .firebaseUID("uid-a")]
        let failures = race(changes.count) { i -> String? in
            do { try FirestoreUserStore(client: host()).update(userId: alice.id, changes[i]); return nil } catch { return "\(error)" }
        }
        #expect(failures.allSatisfy { $0 == nil }, "\(failures)")
        let users = FirestoreUserStore(client: host())
        let stored = try #require(try users.user(id: alice.id))
        #expect(stored.role == .admin && stored.disabled && stored.firebaseUID == "uid-a")
        #expect(try users.credentials(username: "alice")?.passwordHash == "new", "no update lost another's field")
    }

    @Test func anOrganisationNamedMeanwhileKeepsItsName() throws {
        let (host, _) = try project()
        // A host saves the name while others add users of the same new organisation.
        let outcomes = race(5) { i -> String? in
            do {
                if i == 0 { try FirestoreUserStore(client: host()).saveOrganization(id: "org-new", name: "Clinic N") }
                else { try FirestoreUserStore(client: host()).insert(V.user("user\(i)", org: "org-new"), passwordHash: nil) }
                return nil
            } catch { return "\(error)" }
        }
        #expect(outcomes.allSatisfy { $0 == nil }, "\(outcomes)")
        #expect(try FirestoreUserStore(client: host()).organizationName(id: "org-new") == "Clinic N")
    }

    @Test func touchRacesNeverMoveTimeBack() throws {
        let (host, _) = try project()
        let stores = AccountStores.firestore(client: host())
        let alice = try V.addUser(stores, "alice")
        let session = Session(id: V.id(), userId: alice.id, createdAt: V.time(0), lastSeenAt: V.time(0),
                              expiresAt: V.time(3600), csrfHash: V.hash("c"))
        try stores.sessions.insert(session, tokenHash: V.hash("s"))
        let token = APIToken(id: V.id(), userId: alice.id, name: "cli", createdAt: V.time(0), lastUsedAt: nil, revokedAt: nil)
        try stores.apiTokens.insert(token, tokenHash: V.hash("t"))
        let times = [30.0, 90, 60, 10, 75, 45]
        _ = race(times.count) { i -> Bool in
            let other = AccountStores.firestore(client: host())
            let moved = (try? other.sessions.touch(sessionId: session.id, lastSeenAt: V.time(times[i]))) ?? false
            return ((try? other.apiTokens.touch(tokenId: token.id, lastUsedAt: V.time(times[i]))) ?? false) || moved
        }
        #expect(try stores.sessions.session(tokenHash: V.hash("s"))?.lastSeenAt == V.time(90))
        #expect(try stores.apiTokens.token(tokenHash: V.hash("t"))?.lastUsedAt == V.time(90))
        // Two hosts revoking at once: one revocation, its time kept.
        let revoked = race(2) { i in (try? AccountStores.firestore(client: host()).apiTokens.revoke(tokenId: token.id, userId: alice.id, at: V.time(Double(100 + i)))) ?? false }
        #expect(revoked.filter { $0 }.count == 1)
        #expect(try stores.apiTokens.token(tokenHash: V.hash("t"))?.revokedAt == V.time(revoked[0] ? 100 : 101))
    }

    @Test func sessionsAndTokensAreKeyedByHashWithIdGuards() throws {
        let (host, _) = try project()
        let client = host()
        let stores = AccountStores.firestore(client: client)
        let alice = try V.addUser(stores, "alice")
        let session = Session(id: V.id(), userId: alice.id, createdAt: V.time(0), lastSeenAt: V.time(0),
                              expiresAt: V.time(3600), csrfHash: V.hash("c"))
        try stores.sessions.insert(session, tokenHash: V.hash("s"))
        let doc = try #require(try client.get(client.name(FirestoreSessionStore.sessions, V.hash("s"))))
        #expect(doc.fields["id"] == .string(session.id) && doc.fields["userId"] == .string(alice.id))
        #expect(try client.get(client.name(FirestoreSessionStore.sessionIds, session.id))?.fields["tokenHash"] == .string(V.hash("s")))
        #expect(try stores.sessions.delete(sessionId: session.id))
        #expect(try client.get(client.name(FirestoreSessionStore.sessionIds, session.id)) == nil, "the guard goes with the session")
        // The id is free again once the session is gone.
        try stores.sessions.insert(session, tokenHash: V.hash("s2"))
        #expect(try stores.sessions.session(tokenHash: V.hash("s2")) == session)
    }

    @Test func keysThatAreNotDocumentIdsAreEscaped() throws {
        #expect(FirestoreAccounts.documentID("alice@example.org") == "alice@example.org")
        #expect(FirestoreAccounts.documentID("a/b%c d") == "a%2Fb%25c%20d")
        #expect(FirestoreAccounts.documentID("..") == "%2E.")
        #expect(FirestoreAccounts.documentID("__x__") == "%5F_x__")
        #expect(FirestoreAccounts.documentID("") == "")
        let (host, _) = try project()
        let stores = AccountStores.firestore(client: host())
        for (name, org) in [("__x__", "Ward 3/North"), ("...", "__org__"), ("a.b", "..")] {
            var user = V.user(name, org: org)
            user.firebaseUID = "uid/\(name)"
            try stores.users.insert(user, passwordHash: nil)
            #expect(try stores.users.user(username: name) == user)
            #expect(try stores.users.user(firebaseUID: "uid/\(name)") == user)
            #expect(try stores.users.organizationName(id: org) == org)
        }
        #expect(try stores.users.userCount() == 3)
        #expect(try stores.users.user(id: String(repeating: "x", count: 2000)) == nil, "too long to be stored: none")
    }

    @Test func auditDocumentsAreNamedBySortableIdsAndInsertRefusesATakenId() throws {
        let (host, _) = try project()
        let client = host()
        let log = FirestoreAuditLogStore(client: client)
        var entry = AuditEntry(time: V.time(0), actorUserId: "U1", actorUsername: nil, organizationId: "org-a",
                               action: "analysis.heatmap.view", recordId: "R1", address: "10.0.0.1", outcome: "success")
        let id = try log.append(entry)
        #expect(AuditID.milliseconds(of: id) > 1_700_000_000_000)
        let doc = try #require(try client.get(client.name(FirestoreAuditLogStore.audit, String(format: "%019lld", id))))
        #expect(doc.fields["actionPrefixes"] == .array([.string("analysis."), .string("analysis.heatmap.")]))

        // The outbox path: an id assigned before Firestore sees the entry.
        entry.id = AuditID.next()
        try log.insert(entry)
        #expect { try log.insert(entry) } throws: { ($0 as? AuthError)?.kind == .conflict }
        var noId = entry
        noId.id = nil
        #expect { try log.insert(noId) } throws: { ($0 as? AuthError)?.kind == .invalid }
        var filter = AuditFilter()
        filter.action = "analysis.heatmap."
        #expect(try log.entries(filter).map(\.id) == [id, entry.id])
        #expect(FirestoreAuditLogStore.actionPrefixes("a.b.") == ["a.", "a.b."])
        #expect(FirestoreAuditLogStore.actionPrefixes("plain").isEmpty)
    }

    @Test func timeFilteredReadsPageUntilTheLimitIsFilled() throws {
        let (host, _) = try project()
        let log = FirestoreAuditLogStore(client: host())
        // 450 entries; only every 10th is in the time window, so one page of 200 is not enough.
        var inWindow: [Int64] = []
        var batch: [AuditEntry] = []
        for i in 0..<450 {
            var entry = AuditEntry(time: V.time(i % 10 == 0 ? 1000 : 0), actorUserId: nil, actorUsername: nil,
                                   organizationId: "org-a", action: "analysis.view", recordId: nil, address: "a", outcome: "success")
            entry.id = AuditID.next()
            batch.append(entry)
            if i % 10 == 0 { inWindow.append(entry.id!) }
        }
        // Inserted in parallel to keep the test short.
        let entries = batch
        parallel(entries.count) { i in try log.insert(entries[i]) }
        var filter = AuditFilter()
        filter.since = V.time(1000)
        filter.until = V.time(1001)
        filter.limit = 30
        #expect(try log.entries(filter).compactMap(\.id) == Array(inWindow.prefix(30)))
        filter.newestFirst = true
        #expect(try log.entries(filter).compactMap(\.id) == Array(inWindow.reversed().prefix(30)))
        filter.limit = 1000
        filter.newestFirst = false
        filter.action = "analysis."
        #expect(try log.entries(filter).compactMap(\.id) == inWindow)
    }

    @Test func manyExpiredSessionsAreAllDeleted() throws {
        let (host, _) = try project()
        let stores = AccountStores.firestore(client: host())
        let alice = try V.addUser(stores, "alice")
        let sessions = (0..<450).map { i in
            Session(id: V.id(), userId: alice.id, createdAt: V.time(0), lastSeenAt: V.time(0),
                    expiresAt: V.time(i < 420 ? 100 : 10_000), csrfHash: V.hash("c\(i)"))
        }
        parallel(sessions.count) { i in try stores.sessions.insert(sessions[i], tokenHash: V.hash("s\(i)")) }
        #expect(try stores.sessions.deleteExpired(now: V.time(100), idleCutoff: V.time(-1)) == 420)
        #expect(try stores.sessions.deleteAll(userId: alice.id) == 30)
    }
}
