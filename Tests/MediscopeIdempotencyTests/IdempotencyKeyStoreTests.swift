import Foundation
import MediscopeIdempotency
import MediscopeSQLite
import Testing
import TestSupport

/// The key store's decisions, on a real SQLite file: first use, a live holder, a dead one, another
/// request under the key, completion, release and the 24 h memory.
@Suite struct IdempotencyKeyStoreTests {
    /// A process that has ended: its identity names no running process.
    static func endedProcess() throws -> ProcessIdentity {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["5"]
        try process.run()
        let identity = try #require(ProcessIdentity.of(process.processIdentifier))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return identity
    }

    /// init: a process that runs as long as the machine.
    static var liveProcess: ProcessIdentity { ProcessIdentity.of(1)! }

    @Test func aKeyIsRunThenAnsweredFromWhatItMade() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url)
        #expect(try store.claim(scope: "s", fingerprint: "f") == .new)
        // Held by this process, unfinished: only a process that failed to release it asks again.
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: Self.liveProcess) == .running)
        #expect(try store.claim(scope: "s", fingerprint: "other") == .mismatch)
        try store.complete(scope: "s", result: "01ABC")
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: Self.liveProcess) == .done(result: "01ABC"))
        #expect(try store.claim(scope: "s", fingerprint: "other") == .mismatch)
        // Another scope (another user, route or key) is another key.
        #expect(try store.claim(scope: "t", fingerprint: "f") == .new)
    }

    @Test func aKeyWhoseHolderDiedIsTakenOverAndAReleasedOneIsNew() throws {
        let folder = TemporaryFolder("mediscope-idem")
        let store = try IdempotencyKeyStore(directory: folder.url)
        let dead = try Self.endedProcess()
        #expect(dead.isRunning == false)
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: dead) == .new)
        #expect(try store.claim(scope: "s", fingerprint: "f") == .takenOver)
        // Taken over: this process holds it now, so another live one is told it runs.
        #expect(try store.claim(scope: "s", fingerprint: "f", owner: Self.liveProcess) == .running)
        // Only its holder releases it.
        try store.release(scope: "s", owner: Self.liveProcess)
        #expect(try store.count() == 1)
        try store.release(scope: "s")
        #expect(try store.count() == 0)
        #expect(try store.claim(scope: "s", fingerprint: "other") == .new)
        // A finished key is never released.
        try store.complete(scope: "s", result: "r")
        try store.release(scope: "s")
        #expect(try store.claim(scope: "s", fingerprint: "other") == .done(result: "r"))
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
        let owners = [ProcessIdentity.current, Self.liveProcess]
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
        let id = key.analysisId(organizationId: "o", userId: "u")
        #expect(SortableID.isValid(id))
        #expect(id == key.analysisId(organizationId: "o", userId: "u"))
        #expect(Set([id, other.analysisId(organizationId: "o", userId: "u"), key.analysisId(organizationId: "o", userId: "u2"),
                     key.analysisId(organizationId: "o2", userId: "u")]).count == 4)
        // Ids of many keys are valid and distinct.
        let many = try (0..<2000).map { try IdempotencyKey(header: "key-\($0)").analysisId(organizationId: "o", userId: "u") }
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
