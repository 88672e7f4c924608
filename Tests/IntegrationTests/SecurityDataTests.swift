@testable import FirebaseTestKit
import FirestoreTestKit
import Foundation
import MediscopeFirestore
import Testing
import TestSupport

/// Issue 20 (security review) through real nginx and the real pool: what the audit log, the report
/// store, the image responses and the logs guarantee.
@Suite(.serialized) final class SecurityDataTests {
    let stack: Stack
    let adminToken: String
    let intruderToken: String

    init() async throws {
        // Every io request is "slow", so each one leaves a slow_request line to read.
        // A request waiting on a locked audit log waits SQLite's busy timeout more than once; under a loaded
        // CI machine that passed the io pool's 15 s limit (a 500 from the time limit, not the 503 under test).
        stack = try await Stack.start(settings: ["POOLS_IO_SLOW_REQUEST_SECONDS": "0.000001", "POOLS_IO_REQUEST_TIMEOUT_SECONDS": "60"])
        adminToken = try stack.token(forNewUser: "sec-admin", role: "admin")
        intruderToken = try stack.token(forNewUser: "intruder", role: "clinician", organization: "other")
    }
    deinit { stack.stop() }

    static let patient = ["patient_id": "P-SEC-2020", "patient_name": "Wilhelmina Securitas", "note": "seen for the security review"]

    func upload() async throws -> (id: String, heatmap: String) {
        let r = try await stack.upload(image: try Scans.jpeg, fields: Self.patient)
        #expect(r.status == 201)
        let id = try #require(r.json?["id"] as? String)
        let result = try #require((r.json?["results"] as? [[String: Any]])?.first)
        let heatmap = try #require((result["heatmap"] as? [String: Any])?["url"] as? String)
        return (id, heatmap)
    }

    func audit(_ query: String) async throws -> [[String: Any]] {
        let r = try await stack.request("GET", "/api/audit?limit=1000&" + query, auth: .bearer(adminToken))
        #expect(r.status == 200)
        return try #require(r.json?["entries"] as? [[String: Any]])
    }

    static func line(_ entry: [String: Any]) -> String {
        "\(entry["actorUsername"] as? String ?? "-") \(entry["action"] as? String ?? "?") \(entry["outcome"] as? String ?? "?")"
    }

    /// `sqlite3` on one of the store's files; its output, trimmed.
    func sqlite(_ file: String, _ sql: String) throws -> String {
        let path = stack.varDir.appendingPathComponent("store/\(file)").path
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/sqlite3"), [path, sql])
        #expect(run.status == 0, "\(run.stderr)")
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Item 3: the audit log (accounts.sqlite) write-locked by another process: a DELETE is refused
    /// before anything changes, because its intent cannot be written first; once the log is back, the
    /// same DELETE leaves its intent and then its outcome.
    @Test func aChangeWhoseAuditEntryCannotBeWrittenIsNotMade() async throws {
        let (id, _) = try await upload()
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200)

        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        locker.arguments = [stack.varDir.appendingPathComponent("store/accounts.sqlite").path]
        let input = Pipe(), output = Pipe()
        locker.standardInput = input
        locker.standardOutput = output
        try locker.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nSELECT 'locked';\n".utf8))
        var said = ""
        while !said.contains("locked") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            said += String(decoding: data, as: UTF8.self)
        }
        try #require(said.contains("locked"), "sqlite3 holds the write lock of accounts.sqlite")
        let refused = try await stack.request("DELETE", "/api/analyses/\(id)")
        try input.fileHandleForWriting.close()   // sqlite3 ends, its transaction with it
        locker.waitUntilExit()

        #expect(refused.status == 503 && (refused.json?["detail"] as? String)?.contains("audit log") == true,
                "\(refused.status) \(String(decoding: refused.body, as: UTF8.self))")
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200, "nothing was deleted without its trace")
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)").status == 204)
        let trail = try await audit("record=\(id)&action=analysis.delete").map(Self.line)
        #expect(trail == ["clinician analysis.delete started", "clinician analysis.delete success"], "\(trail)")
    }

    /// Item 6: a signed report is a record that is kept: its analysis cannot be deleted (409, nothing
    /// changes); an analysis whose report is a draft is deleted with every version.
    @Test func aSignedReportIsKeptAndItsAnalysisWithIt() async throws {
        let (signedId, _) = try await upload()
        let report = try await stack.draft(signedId)
        let sign = try await stack.request("POST", "/api/analyses/\(signedId)/report/sign", body: try JSONSerialization.data(
            withJSONObject: ["text": "Signed: no change.", "baseVersion": try #require(report["version"] as? Int)]), contentType: "application/json")
        #expect(sign.status == 200)
        let refused = try await stack.request("DELETE", "/api/analyses/\(signedId)")
        #expect(refused.status == 409 && (refused.json?["detail"] as? String)?.contains("signed") == true,
                "\(refused.status) \(String(decoding: refused.body, as: UTF8.self))")
        let kept = try #require(try await stack.request("GET", "/api/analyses/\(signedId)").json)
        #expect((kept["report"] as? [String: Any])?["status"] as? String == "signed", "\(kept)")
        let amend = try await stack.request("POST", "/api/analyses/\(signedId)/report/amend", body: try JSONSerialization.data(
            withJSONObject: ["text": "Amended: still no change.", "baseVersion": try #require(report["version"] as? Int) + 1]),
            contentType: "application/json")
        #expect(amend.status == 200, "the refused delete left the report open to amendments")

        let (draftedId, _) = try await upload()
        _ = try await stack.draft(draftedId)
        #expect(try await stack.request("DELETE", "/api/analyses/\(draftedId)").status == 204)
        #expect(try await stack.request("GET", "/api/analyses/\(draftedId)").status == 404)
        #expect(try sqlite("reports.sqlite", "SELECT count(*) FROM report_versions WHERE analysis_id = '\(draftedId)'") == "0")
    }

    /// Item 10: another organisation's clinician trying every route of a record gets 404s, and each
    /// attempt is in the owning organisation's trail (as well as in the intruder's own); a refused poll
    /// of the report is audited; an admin's reads of the audit log and the user list are too.
    @Test func attemptsOnARecordAreInItsOwnersTrail() async throws {
        let (id, heatmap) = try await upload()
        let body = try JSONSerialization.data(withJSONObject: ["text": "Not yours.", "baseVersion": 1])
        let attempts: [(String, String, Data?)] = [
            ("GET", "/api/analyses/\(id)", nil), ("GET", "/api/analyses/\(id)/scan.jpg", nil), ("GET", heatmap, nil),
            ("GET", "/analyses/\(id)/report", nil), ("GET", "/api/analyses/\(id)/report", nil),
            ("PUT", "/api/analyses/\(id)/report", body), ("POST", "/api/analyses/\(id)/report/sign", body),
            ("POST", "/api/analyses/\(id)/report/amend", body), ("DELETE", "/api/analyses/\(id)", nil),
        ]
        for (method, path, body) in attempts {
            let r = try await stack.request(method, path, body: body, contentType: body == nil ? nil : "application/json",
                                            auth: .bearer(intruderToken))
            #expect(r.status == 404, "\(method) \(path) -> \(r.status)")
        }
        #expect(try await stack.request("GET", "/api/analyses/\(id)/report", auth: .bearer(adminToken)).status == 403)

        let seen = try await audit("record=\(id)&outcome=denied").map(Self.line)
        #expect(seen.filter { $0.hasPrefix("intruder ") }.sorted() == [
            "intruder analysis.delete denied", "intruder analysis.image denied", "intruder analysis.image denied",
            "intruder analysis.report denied", "intruder analysis.view denied", "intruder report.amend denied",
            "intruder report.edit denied", "intruder report.sign denied", "intruder report.view denied",
        ], "\(seen)")
        #expect(seen.contains("sec-admin report.view denied"), "a refused poll of the report is audited: \(seen)")

        #expect(try await stack.request("GET", "/api/users", auth: .bearer(adminToken)).status == 200)
        #expect(try await stack.request("GET", "/api/audit/export?action=analysis.", auth: .bearer(adminToken)).status == 200)
        let me = try #require(try await stack.request("GET", "/api/me", auth: .bearer(adminToken)).json?["user"] as? [String: Any])
        let adminId = try #require(me["id"] as? String)
        let reads = try await audit("actor=\(adminId)").map(Self.line)
        for action in ["user.list", "audit.view", "audit.export"] {
            #expect(reads.contains("sec-admin \(action) success"), "\(action): \(reads)")
        }
    }

    /// Item 11: scans and heatmaps are kept by the browser only and asked for again each time; asking
    /// is cheap, a 304 through nginx.
    @Test func imagesAreRevalidatedNotKeptForAYear() async throws {
        let (id, heatmap) = try await upload()
        for url in ["/api/analyses/\(id)/scan.jpg", heatmap] {
            let first = try await stack.request("GET", url)
            #expect(first.status == 200 && first.body.count > 100)
            #expect(first.header("Cache-Control") == "private, no-cache", "\(url): \(first.header("Cache-Control") ?? "none")")
            let etag = try #require(first.header("ETag"), "\(url) has an ETag")
            let again = try await stack.request("GET", url, headers: ["If-None-Match": etag])
            #expect(again.status == 304 && again.body.isEmpty, "\(url): \(again.status)")
            let other = try await stack.request("GET", url, headers: ["If-None-Match": "\"something-else\""])
            #expect(other.status == 200 && other.body == first.body)
        }
        #expect(try await stack.request("GET", "/api/analyses/\(id)/scan.jpg", auth: .bearer(intruderToken)).status == 404)
    }

    /// Item 13: the slow-request log names the route's pattern, never the path with its record id.
    @Test func theSlowRequestLogNamesRoutePatterns() async throws {
        let (id, _) = try await upload()
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200)
        #expect(try await stack.request("GET", "/api/no/such/route").status == 404)
        var slow: [String] = []
        let logged = await eventually(timeout: 60) {
            let log = (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? ""
            slow = log.split(separator: "\n").map(String.init).filter { $0.contains("\"slow_request\"") }
            return slow.contains { $0.contains(#""route":"GET /api/analyses/{id}""#) } && slow.contains { $0.contains("no route") }
        }
        #expect(logged, "\(slow.suffix(5))")
        #expect(!slow.contains { $0.contains(id) }, "no record id in the slow-request log")
    }
}

/// Item 6: a draft whose LLM answers after its analysis was deleted is not kept.
@Suite(.serialized) struct LateDraftTests {
    @Test func aDraftWrittenAfterItsAnalysisWasDeletedIsNotKept() async throws {
        let release = DispatchSemaphore(value: 0)
        let llm = try ScriptedHTTPServer { _, _ in
            _ = release.wait(timeout: .now() + 60)
            return .json(200, #"{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"The heatmap shows the region the model weighed most. Decision support only."}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#)
        }
        defer { llm.stop() }
        let stack = try await Stack.start(settings: ["LLM_BASE_URL": llm.baseURL.appendingPathComponent("openai/v1").absoluteString,
                                         "LLM_MODEL": "m", "LLM_TIMEOUT_SECONDS": "90"])
        defer { stack.stop() }
        let upload = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-LATE-DRAFT-1"])
        let id = try #require(upload.json?["id"] as? String)
        #expect(await eventually(timeout: 60) { !llm.requests.isEmpty }, "the LLM holds the draft's request")
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)").status == 204)
        release.signal()

        func count(_ file: String, _ sql: String) throws -> String {
            let run = try runProcess(URL(fileURLWithPath: "/usr/bin/sqlite3"), [stack.varDir.appendingPathComponent("store/\(file)").path, sql])
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try await eventually(timeout: 60, every: .milliseconds(100)) {
            try count("jobs.sqlite", "SELECT count(*) FROM jobs WHERE key = '\(id)'") == "0"
        }, "the draft job finished")
        #expect(try count("reports.sqlite", "SELECT count(*) FROM report_versions WHERE analysis_id = '\(id)'") == "0",
                "no version of a deleted analysis's report is kept")
        for _ in 0..<3 { release.signal() }
    }
}

/// Item 13: a Firebase user added from its token's custom claims is named by its email only when
/// Firebase says the email is verified (anyone may create a Firebase account with someone else's address).
@Suite(.serialized) final class FirebaseDisplayNameTests {
    let certificates: FirebaseTestHTTPServer
    let stack: Stack

    init() async throws {
        certificates = try FirebaseTestHTTPServer(FirebaseFixtures.certificatesResponse([FirebaseFixtures.keyA]))
        stack = try await Stack.start(settings: ["FIREBASE_PROJECT_ID": FirebaseFixtures.projectId,
                                     "FIREBASE_CERTIFICATES_URL": certificates.url.absoluteString, "POOLS_IO_WORKERS": "1"])
    }
    deinit {
        stack.stop()
        certificates.stop()
    }

    @Test func anUnverifiedEmailNamesNobody() async throws {
        for (uid, verified) in [("uid-unverified-1", false), ("uid-verified-1", true)] {
            let claims = FirebaseFixtures.claims(now: Date(), overrides: ["sub": uid, "user_id": uid, "email": "chief.of.medicine@example.org",
                                                                          "email_verified": verified])
            let me = try await stack.request("GET", "/api/me", auth: .bearer(FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: claims)))
            #expect(me.status == 200)
            let user = try #require(me.json?["user"] as? [String: Any])
            if verified {
                #expect(user["displayName"] as? String == "chief.of.medicine@example.org")
            } else {
                #expect(user["displayName"] as? String == nil, "an unverified email is not a name: \(user)")
            }
        }
    }
}

/// Items 6 and 11 with `store = firestore`: a signed report keeps its analysis, a deleted one's report
/// keeps only the marker that closes it; images served from Firestore's bytes revalidate by their key.
@Suite(.serialized, .firestoreEmulator) final class FirestoreSecurityDataTests {
    let project = "security-\(UUID().uuidString.prefix(8).lowercased())"
    let stack: Stack
    let firestore: FirestoreClient

    init() async throws {
        let emulator = try SharedEmulator.get()
        stack = try await Stack.start(settings: ["STORE": "firestore", "FIRESTORE_PROJECT_ID": project], environment: ["FIRESTORE_EMULATOR_HOST": emulator.host])
        firestore = emulator.client(projectId: project)
    }
    deinit { stack.stop() }

    @Test func aSignedReportIsKeptAndAClosedOneTakesNoDraft() async throws {
        let upload = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-FS-SIGNED"])
        let signedId = try #require(upload.json?["id"] as? String)
        let report = try await stack.draft(signedId)
        let sign = try await stack.request("POST", "/api/analyses/\(signedId)/report/sign", body: try JSONSerialization.data(
            withJSONObject: ["text": "Signed in Firestore.", "baseVersion": try #require(report["version"] as? Int)]), contentType: "application/json")
        #expect(sign.status == 200)
        let refused = try await stack.request("DELETE", "/api/analyses/\(signedId)")
        #expect(refused.status == 409 && (refused.json?["detail"] as? String)?.contains("signed") == true, "\(refused.status)")
        #expect(try await stack.request("GET", "/api/analyses/\(signedId)").status == 200)

        let other = try #require(try await stack.upload(image: try Scans.png, fields: ["patient_id": "P-FS-DRAFT"]).json?["id"] as? String)
        _ = try await stack.draft(other)
        #expect(try await stack.request("DELETE", "/api/analyses/\(other)").status == 204)
        let left = try firestore.runQuery(FirestoreQuery(collectionId: "reportVersions", equal: [("analysisId", .string(other))]))
        #expect(left.count == 1 && left.first?.fields["status"] == .string("closed") && left.first?.fields["text"] == nil,
                "only the marker that keeps the report closed: \(left.map(\.fields))")
    }

    @Test func imagesFromFirestoreRevalidateByTheirKey() async throws {
        let upload = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-FS-ETAG"])
        let id = try #require(upload.json?["id"] as? String)
        let first = try await stack.request("GET", "/api/analyses/\(id)/scan.jpg")
        #expect(first.status == 200 && first.body.count > 100)
        #expect(first.header("Cache-Control") == "private, no-cache", "\(first.header("Cache-Control") ?? "none")")
        let etag = try #require(first.header("ETag"))
        #expect(etag.wholeMatch(of: /"[0-9a-f]{64}"/) != nil, "the image's key (SHA-256) is its ETag: \(etag)")
        let again = try await stack.request("GET", "/api/analyses/\(id)/scan.jpg", headers: ["If-None-Match": etag])
        #expect(again.status == 304 && again.body.isEmpty && again.header("Cache-Control") == "private, no-cache")
    }
}
