import FirebaseTestKit
import FirestoreTestKit
import Foundation
import MediscopeFirestore
import Testing
import TestSupport

/// The REST client against the real Firestore emulator; failures the emulator cannot produce on cue
/// (503, 429, a 401 that a new token cures) against a local server speaking Firestore's error format.
@Suite(.serialized, .firestoreEmulator)
struct FirestoreClientTests {
    static let every: [String: FirestoreValue] = [
        "null": .null, "yes": .boolean(true), "no": .boolean(false),
        "max": .integer(.max), "min": .integer(.min), "pi": .double(3.141592653589793), "nan": .double(.nan),
        "inf": .double(.infinity), "negInf": .double(-.infinity),
        "when": .timestamp(Date(timeIntervalSince1970: 1_764_435_600.123)), "before1970": .timestamp(Date(timeIntervalSince1970: -86_400.5)),
        "text": .string("Müller-7 · דוד · 🧠"), "empty": .string(""), "bytes": .bytes((0...255).map(UInt8.init)),
        "geo": .geoPoint(latitude: 52.5, longitude: -13.25),
        "list": .array([.integer(1), .string("two"), .map(["inner": .array([.boolean(true)])]), .map(["k": .null])]),
        "nested": .map(["a": .map(["b": .integer(-7)]), "c": .array([])]),
    ]

    /// NaN is never equal to itself: compare through its spelling.
    static func same(_ a: FirestoreValue?, _ b: FirestoreValue?) -> Bool {
        if case .double(let x)? = a, case .double(let y)? = b, x.isNaN, y.isNaN { return true }
        return a == b
    }

    @Test func everyValueTypeRoundTrips() throws {
        let client = try SharedEmulator.get().client()
        var fields = Self.every
        fields["ref"] = .reference(client.name("other", "doc-1"))
        try client.commit([.set(FirestoreDocument(name: client.name("values", "all"), fields: fields))])
        let read = try #require(try client.get(client.name("values", "all")))
        #expect(Set(read.fields.keys) == Set(fields.keys))
        for (key, value) in fields { #expect(Self.same(read.fields[key], value), "\(key): \(String(describing: read.fields[key]))") }
        #expect(read.id == "all" && read.createTime != nil)
    }

    @Test func createWithExistsFalseRefusesASecondCreateWithoutRetrying() throws {
        let sleeps = LockedBox<[Double]>([])
        let client = try SharedEmulator.get().client(sleep: { sleeps.append($0) })
        let doc = FirestoreDocument(name: client.name("outbox", "01ABC"), fields: ["n": .integer(1)])
        try client.commit([.set(doc, precondition: .exists(false))])
        #expect { try client.commit([.set(FirestoreDocument(name: doc.name, fields: ["n": .integer(2)]), precondition: .exists(false))]) }
            throws: { ($0 as? FirestoreError)?.status == .alreadyExists && ($0 as? FirestoreError)?.httpStatus == 409 }
        #expect(sleeps.value.count == 0, "ALREADY_EXISTS is final")
        #expect(try client.get(doc.name)?.fields["n"] == .integer(1), "the first write stands")
    }

    @Test func batchGetLeavesOutMissingDocumentsAndDeleteRemoves() throws {
        let client = try SharedEmulator.get().client()
        let a = client.name("c", "a"), b = client.name("c", "b")
        try client.commit([.set(FirestoreDocument(name: a, fields: ["x": .integer(1)])), .set(FirestoreDocument(name: b, fields: [:]))])
        let found = try client.batchGet([a, b, client.name("c", "missing")])
        #expect(Set(found.keys) == [a, b])
        try client.commit([.delete(name: a, precondition: .exists(true))])
        #expect(try client.get(a) == nil)
        #expect { try client.commit([.delete(name: a, precondition: .exists(true))]) } throws: {
            ($0 as? FirestoreError)?.status == .notFound
        }
    }

    @Test func queriesFilterOrderLimitAndPageWithACursor() throws {
        let client = try SharedEmulator.get().client()
        var writes: [FirestoreWrite] = []
        for i in 0..<9 {
            // Two share a time: the document name breaks the tie.
            let ms = Double(1_764_435_600_000 + (i == 4 ? 3 : i) * 1000) / 1000
            writes.append(.set(FirestoreDocument(name: client.name("analyses", String(format: "id-%02d", i)), fields: [
                "organizationId": .string(i % 3 == 0 ? "org-b" : "org-a"), "patientId": .string(i % 2 == 0 ? "P-1" : "P-2"),
                "createdAt": .timestamp(Date(timeIntervalSince1970: ms)),
            ])))
        }
        try client.commit(writes)
        func page(_ after: [FirestoreValue]?) throws -> [FirestoreDocument] {
            try client.runQuery(FirestoreQuery(collectionId: "analyses", equal: [("organizationId", .string("org-a"))],
                                               orderBy: [("createdAt", true), ("__name__", true)], limit: 2, startAfter: after))
        }
        var seen: [String] = []
        var after: [FirestoreValue]?
        while true {
            let docs = try page(after)
            seen += docs.map(\.id)
            guard docs.count == 2, let last = docs.last, let at = last.fields["createdAt"] else { break }
            after = [at, .reference(last.name)]
        }
        #expect(seen == ["id-08", "id-07", "id-05", "id-04", "id-02", "id-01"], "newest first, ties by name, no repeats")
        let both = try client.runQuery(FirestoreQuery(collectionId: "analyses", equal: [("organizationId", .string("org-a")), ("patientId", .string("P-1"))]))
        #expect(Set(both.map(\.id)) == ["id-02", "id-04", "id-08"])
        #expect(try client.runQuery(FirestoreQuery(collectionId: "nothing-here")).isEmpty)
    }

    @Test func rangeFiltersAndCount() throws {
        let client = try SharedEmulator.get().client()
        try client.commit((0..<6).map { i in
            .set(FirestoreDocument(name: client.name("n", "d\(i)"), fields: ["v": .integer(Int64(i)), "odd": .boolean(i % 2 == 1)]))
        })
        func ids(_ ranges: [(String, FirestoreQuery.Comparison, FirestoreValue)], descending: Bool = false) throws -> [String] {
            var q = FirestoreQuery(collectionId: "n", orderBy: [("v", descending)])
            q.range = ranges.map { (field: $0.0, comparison: $0.1, value: $0.2) }
            return try client.runQuery(q).map(\.id)
        }
        #expect(try ids([("v", .greaterThan, .integer(1)), ("v", .lessThanOrEqual, .integer(4))]) == ["d2", "d3", "d4"])
        #expect(try ids([("v", .greaterThanOrEqual, .integer(4))], descending: true) == ["d5", "d4"])
        #expect(try ids([("v", .lessThan, .integer(1))]) == ["d0"])
        #expect(try client.count(FirestoreQuery(collectionId: "n")) == 6)
        #expect(try client.count(FirestoreQuery(collectionId: "n", equal: [("odd", .boolean(true))])) == 3)
        #expect(try client.count(FirestoreQuery(collectionId: "nothing-here")) == 0)
    }

    @Test func invalidArgumentIsFinal() throws {
        let sleeps = LockedBox<[Double]>([])
        let client = try SharedEmulator.get().client(sleep: { sleeps.append($0) })
        #expect { try client.commit([.set(FirestoreDocument(name: "not/a/resource/name", fields: [:]))]) } throws: {
            ($0 as? FirestoreError)?.status == .invalidArgument
        }
        #expect(sleeps.value.count == 0)
    }
}

/// Retry, back-off and token refresh against a local server that answers in Firestore's error format.
@Suite struct FirestoreRetryTests {
    final class CountingCredentials: AccessTokenProvider, @unchecked Sendable {
        let refreshes = LockedBox<[Bool]>([])
        func accessToken(forceRefresh: Bool) throws(FirestoreError) -> String {
            if forceRefresh { refreshes.append(true) }
            return "token-\(refreshes.value.count)"
        }
    }

    static let commitOK = ScriptedHTTPServer.Response.json(200, #"{"writeResults":[{}],"commitTime":"2026-11-29T17:00:00Z"}"#)
    static func failure(_ code: Int, _ status: String) -> ScriptedHTTPServer.Response {
        .json(code, #"{"error":{"code":\#(code),"message":"scripted","status":"\#(status)"}}"#)
    }

    func client(_ server: ScriptedHTTPServer, credentials: AccessTokenProvider = EmulatorCredentials(),
                sleeps: LockedBox<[Double]>) -> FirestoreClient {
        var config = FirestoreConfiguration(projectId: "p", baseURL: server.baseURL.appendingPathComponent("v1/"))
        config.maxAttempts = 4
        return FirestoreClient(configuration: config, credentials: credentials) { sleeps.append($0) }
    }

    @Test(arguments: [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED"), (409, "ABORTED"), (504, "DEADLINE_EXCEEDED")])
    func transientFailuresAreRetriedWithCappedBackoff(code: Int, status: String) throws {
        let server = try ScriptedHTTPServer { _, i in i < 2 ? Self.failure(code, status) : Self.commitOK }
        let sleeps = LockedBox<[Double]>([])
        try client(server, sleeps: sleeps).commit([FirestoreWrite.delete(name: "projects/p/databases/(default)/documents/c/x")])
        #expect(server.requests.count == 3)
        let waits = sleeps.value
        #expect(waits.count == 2 && waits.allSatisfy { $0 >= 0 && $0 <= 5 })
        #expect(server.requests.allSatisfy { $0.path == "/v1/projects/p/databases/(default)/documents:commit" && $0.method == "POST" })
    }

    @Test(arguments: [(409, "ALREADY_EXISTS"), (400, "INVALID_ARGUMENT"), (400, "FAILED_PRECONDITION"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")])
    func permanentFailuresAreNotRetried(code: Int, status: String) throws {
        let server = try ScriptedHTTPServer { _, _ in Self.failure(code, status) }
        let sleeps = LockedBox<[Double]>([])
        #expect { try client(server, sleeps: sleeps).commit([]) } throws: { ($0 as? FirestoreError)?.status.rawValue == status }
        #expect(server.requests.count == 1)
    }

    @Test func givesUpAfterMaxAttempts() throws {
        let server = try ScriptedHTTPServer { _, _ in Self.failure(503, "UNAVAILABLE") }
        let sleeps = LockedBox<[Double]>([])
        #expect { try client(server, sleeps: sleeps).commit([]) } throws: { ($0 as? FirestoreError)?.status == .unavailable }
        #expect(server.requests.count == 4 && sleeps.value.count == 3)
    }

    @Test func unauthenticatedRefreshesTheTokenOnce() throws {
        let server = try ScriptedHTTPServer { req, _ in
            req.headers["authorization"] == "Bearer token-1" ? Self.commitOK : Self.failure(401, "UNAUTHENTICATED")
        }
        let credentials = CountingCredentials()
        let sleeps = LockedBox<[Double]>([])
        try client(server, credentials: credentials, sleeps: sleeps).commit([])
        #expect(credentials.refreshes.value.count == 1)
        #expect(server.requests.map { $0.headers["authorization"] } == ["Bearer token-0", "Bearer token-1"])
        // A token that stays refused is refused once more, not forever.
        let refusing = try ScriptedHTTPServer { _, _ in Self.failure(401, "UNAUTHENTICATED") }
        #expect { try client(refusing, credentials: CountingCredentials(), sleeps: sleeps).commit([]) } throws: {
            ($0 as? FirestoreError)?.status == .unauthenticated
        }
        #expect(refusing.requests.count == 2)
    }

    @Test func connectionRefusedIsUnavailable() throws {
        let server = try ScriptedHTTPServer { _, _ in Self.commitOK }
        let url = server.baseURL
        server.stop()
        var config = FirestoreConfiguration(projectId: "p", baseURL: url.appendingPathComponent("v1/"))
        config.maxAttempts = 2
        let client = FirestoreClient(configuration: config, credentials: EmulatorCredentials()) { _ in }
        #expect { try client.commit([]) } throws: { ($0 as? FirestoreError)?.status == .unavailable }
    }
}
