import Foundation
import MediscopeIdempotency
import MediscopeSQLite
import Testing
import TestSupport

/// The key store's decisions, on a real SQLite file: first use, a live holder, a dead one, another
/// request under the key, completion, release and the 24 h memory.
@Suite struct IdempotencyKeyStoreTests {
    /// A `sleep` started for the test: a live process other than this one (pid 1 may be this one, in a
    /// container). Killed and reaped by `end`.
    final class OtherProcess {
        let process = Process()
        let identity: ProcessIdentity
        init() throws {
            process.executableURL = URL(fileURLWithPath: "/bin/sleep")
            process.arguments = ["600"]
            try process.run()
            identity = try #require(ProcessIdentity.of(process.processIdentifier))
        }
        func end() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        deinit { if process.isRunning { end() } }
    }

    /// A process that has ended: its identity names no running process.
    static func endedProcess() throws -> ProcessIdentity {
        let other = try OtherProcess()
        other.end()
        return other.identity
    }

    @Test func aKeyIsRunThenAnsweredFromWhatItMade() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url)
        let other = try OtherProcess()
        #expect(try store.claim(scope: "s", fingerprint: "f") == .new)
        // Held by this process, unfinished: only a process that failed to release it asks again.
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: other.identity) == .running)
        #expect(try store.claim(scope: "s", fingerprint: "other") == .mismatch)
        try store.complete(scope: "s", result: "01ABC")
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: other.identity) == .done(result: "01ABC"))
        #expect(try store.claim(scope: "s", fingerprint: "other") == .mismatch)
        // Another scope (another user, route or key) is another key.
        #expect(try store.claim(scope: "t", fingerprint: "f") == .new)
    }

    @Test func aKeyWhoseHolderDiedIsTakenOverAndAReleasedOneIsNew() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url)
        let other = try OtherProcess()
        let dead = try Self.endedProcess()
        #expect(dead.isRunning == false)
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: dead) == .new)
        #expect(try store.claim(scope: "s", fingerprint: "f") == .takenOver)
        // Taken over: this process holds it now, so another live one is told it runs.
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: other.identity) == .running)
        // Only its holder releases it.
        try store.release(scope: "s", owner: other.identity)
        #expect(try store.count() == 1)
        try store.release(scope: "s")
        #expect(try store.count() == 0)
        #expect(try store.claim(scope: "s", fingerprint: "other") == .new)
        // A finished key is never released.
        try store.complete(scope: "s", result: "r")
        try store.release(scope: "s")
        #expect(try store.claim(scope: "s", fingerprint: "other") == .done(result: "r"))
    }

    /// A claim older than any request may run is taken over though its holder lives (its completion or
    /// release could not be written): a key is never stuck answering 409.
    @Test func aClaimOlderThanAnyRequestIsTakenOver() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url, staleAfter: 600)
        let other = try OtherProcess()
        let start = Date()
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: other.identity, now: start) == .new)
        #expect(try store.claim(scope: "s", fingerprint: "f", now: start.addingTimeInterval(599)) == .running)
        #expect(try store.claim(scope: "s", fingerprint: "f", now: start.addingTimeInterval(601)) == .takenOver)
        // Taken over now: the new claim holds for its own 600 s.
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: other.identity, now: start.addingTimeInterval(700)) == .running)
    }

    @Test func keysAreForgottenAfterTheRetention() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url)
        #expect(store.retention == 86_400)
        let start = Date()
        #expect(try store.claim(scope: "s", fingerprint: "f", now: start) == .new)
        try store.complete(scope: "s", result: "r")
        #expect(try store.claim(scope: "s", fingerprint: "g", now: start.addingTimeInterval(86_000)) == .mismatch)
        #expect(try store.claim(scope: "s", fingerprint: "g", now: start.addingTimeInterval(86_401)) == .new)
        #expect(try store.count() == 1)
    }

    @Test func ofTwoClaimsAtOnceOneRunsAndTheOtherIsToldItRuns() async throws {
        let folder = TemporaryFolder("mediscope-idem")
        // Two connections, as two worker processes have, and two live holders.
        let stores = [try IdempotencyKeyStore(directory: folder.url), try IdempotencyKeyStore(directory: folder.url)]
        let other = try OtherProcess()
        let owners = [ProcessIdentity.current, other.identity]
        for round in 0..<20 {
            let claims = try await withThrowingTaskGroup(of: IdempotencyClaim.self) { group in
                for i in 0..<2 {
                    group.addTask { try stores[i].claim(scope: "round \(round)", fingerprint: "f", owner: owners[i]) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(claims.filter { $0 == .new }.count == 1 && claims.filter { $0 == .running }.count == 1, "\(claims)")
        }
    }

    @Test func theStartTimeTellsALaterProcessWithTheSamePidApart() throws {
        let me = ProcessIdentity.current
        #expect(me.isRunning)
        #expect(me.startTicks > 0)
        #expect(ProcessIdentity(pid: me.pid, startTicks: me.startTicks + 1).isRunning == false)
        #expect(ProcessIdentity(pid: 0, startTicks: 0).isRunning == false)
    }
}

/// The header's value, the scopes and ids a key gives, and the fingerprint's framing.
@Suite struct IdempotencyKeyTests {
    @Test func quotedAndBareKeysAreReadAndBadOnesRefused() throws {
        #expect(try IdempotencyKey(header: "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").value == "8e03978e-40d5-43e8-bc93-6894a57f9324")
        #expect(try IdempotencyKey(header: " abc-123 ").value == "abc-123")
        #expect(try IdempotencyKey(header: #""a \"quoted\" key \\ here""#).value == #"a "quoted" key \ here"#)
        #expect(try IdempotencyKey(header: "\"" + String(repeating: "k", count: 255) + "\"").value.count == 255)
        for bad in ["", "\"\"", "  ", "\"open", "\"a\"b", "two words", "caf\u{E9}", "\"tab\there\"", "\"\\n\"",
                    String(repeating: "k", count: 256), "a\"b"] {
            #expect(throws: IdempotencyKey.Malformed.self, "\(bad.debugDescription)") { try IdempotencyKey(header: bad) }
        }
    }

    @Test func scopesAndIdsDependOnEveryPartAndIdsAreValid() throws {
        let key = try IdempotencyKey(header: "k1"), other = try IdempotencyKey(header: "k2")
        let scope = key.scope(organizationId: "o", userId: "u", method: "POST", path: "/api/analyses")
        #expect(scope.count == 64)
        #expect(scope == key.scope(organizationId: "o", userId: "u", method: "POST", path: "/api/analyses"))
        let others = [other.scope(organizationId: "o", userId: "u", method: "POST", path: "/api/analyses"),
                      key.scope(organizationId: "o2", userId: "u", method: "POST", path: "/api/analyses"),
                      key.scope(organizationId: "o", userId: "u2", method: "POST", path: "/api/analyses"),
                      key.scope(organizationId: "o", userId: "u", method: "PUT", path: "/api/analyses"),
                      key.scope(organizationId: "o", userId: "u", method: "POST", path: "/api/analyses/x/report/sign")]
        #expect(Set(others + [scope]).count == 6)
        let id = key.analysisId(organizationId: "o", userId: "u", fingerprint: "f")
        #expect(SortableID.isValid(id))
        #expect(id == key.analysisId(organizationId: "o", userId: "u", fingerprint: "f"))
        // Another key, user, organisation or request (another patient's upload under the same key) is another id.
        #expect(Set([id, other.analysisId(organizationId: "o", userId: "u", fingerprint: "f"),
                     key.analysisId(organizationId: "o", userId: "u2", fingerprint: "f"),
                     key.analysisId(organizationId: "o2", userId: "u", fingerprint: "f"),
                     key.analysisId(organizationId: "o", userId: "u", fingerprint: "g")]).count == 5)
        // Ids of many keys are valid and distinct.
        let many = try (0..<2000).map { try IdempotencyKey(header: "key-\($0)").analysisId(organizationId: "o", userId: "u", fingerprint: "f") }
        #expect(many.allSatisfy(SortableID.isValid))
        #expect(Set(many).count == many.count)
    }

    @Test func fieldsNeverRunTogether() {
        func digest(_ fields: [String]) -> String {
            var f = RequestFingerprint()
            for field in fields { f.add(field) }
            return f.hex
        }
        #expect(digest(["ab", "c"]) != digest(["a", "bc"]))
        #expect(digest(["abc"]) != digest(["abc", ""]))
        #expect(digest(["abc"]) == digest(["abc"]))
        #expect(digest([]).count == 64)
    }
}
