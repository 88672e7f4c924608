import Foundation
import Testing

/// The audit trail and the logs, through real nginx and the real pool.
@Suite(.serialized) final class AuditTests {
    let stack: Stack
    let adminToken: String

    init() async throws {
        stack = try await Stack.start()
        adminToken = try stack.token(forNewUser: "auditor", role: "admin")
    }
    deinit { stack.stop() }

    func entries(actor username: String) async throws -> [[String: Any]] {
        let r = try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(adminToken))
        #expect(r.status == 200)
        let all = try #require(r.json?["entries"] as? [[String: Any]])
        return all.filter { $0["actorUsername"] as? String == username }
    }

    @Test func eachActionLeavesExactlyItsEntries() async throws {
        try stack.addUser("auditee", role: "clinician")
        let bad = try await stack.request("POST", "/api/session", body: Data(#"{"username":"auditee","password":"not it at all"}"#.utf8),
                                          contentType: "application/json", auth: Stack.Auth.none)
        #expect(bad.status == 401)
        let session = try stack.syncSignIn("auditee")
        let token = try stack.syncCreateToken(session)
        let upload = try await stack.upload(image: try Scans.jpeg, auth: .bearer(token))
        let id = try #require(upload.json?["id"] as? String)
        #expect(try await stack.request("GET", "/api/analyses/\(id)", auth: session).status == 200)
        #expect(try await stack.request("GET", "/api/analyses?limit=5", auth: session).status == 200)
        #expect(try await stack.request("GET", "/api/analyses/\(id)/scan.jpg", auth: session).status == 200)
        #expect(try await stack.request("GET", "/api/analyses/NOSUCHANALYSIS000000000000", auth: session).status == 404)
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)", auth: .bearer(token)).status == 204)
        let tokens = try #require(try await stack.request("GET", "/api/tokens", auth: session).json?["tokens"] as? [[String: Any]])
        let tokenId = try #require(tokens.first?["id"] as? String)
        #expect(try await stack.request("DELETE", "/api/tokens/\(tokenId)", auth: session).status == 204)
        #expect(try await stack.request("DELETE", "/api/session", auth: session).status == 204)

        let trail = try await entries(actor: "auditee")
        let actions = trail.map { "\($0["action"] as? String ?? "?") \($0["outcome"] as? String ?? "?")" }
        // A change leaves its intent (started) before it runs, then its outcome.
        #expect(actions == [
            "session.create failure", "session.create success", "token.create started", "token.create success",
            "analysis.create started", "analysis.create success", "analysis.view success", "analysis.list success",
            "analysis.image success", "analysis.view not_found", "analysis.delete started", "analysis.delete success",
            "token.revoke started", "token.revoke success", "session.delete success",
        ])
        let records = trail.map { $0["recordId"] as? String }
        try #require(records.count == 15)
        #expect(records[4] == nil && records[5] == id, "an upload's record id is known only once it is stored")
        #expect(records[6] == id && records[8] == id && records[10] == id && records[11] == id)
        #expect(records[12] == tokenId && records[13] == tokenId)
        #expect(trail.allSatisfy { ($0["address"] as? String)?.hasPrefix("127.") == true })
        #expect(trail.dropFirst().allSatisfy { $0["actorUserId"] as? String != nil })
    }

    @Test func newestFirstPagesWalkTheWholeLogOnce() async throws {
        let oldest = try #require(try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(adminToken))
            .json?["entries"] as? [[String: Any]]).compactMap { $0["id"] as? Int }
        #expect(oldest.count >= 3)
        var newest: [Int] = []
        var before: Int? = nil
        while true {
            let r = try await stack.request("GET", "/api/audit?order=newest&limit=2" + (before.map { "&before=\($0)" } ?? ""),
                                            auth: .bearer(adminToken))
            #expect(r.status == 200)
            let page = try #require(r.json?["entries"] as? [[String: Any]]).compactMap { $0["id"] as? Int }
            newest += page
            before = r.json?["nextBefore"] as? Int
            if before == nil { break }
            #expect(page.count == 2)
        }
        // Entries written while paging (the admin's own reads, audited as they end) show up only at the front.
        #expect(Array(newest.reversed().prefix(oldest.count)) == oldest)
        #expect(try await stack.request("GET", "/api/audit?order=sideways", auth: .bearer(adminToken)).status == 400)
        #expect(try await stack.request("GET", "/api/audit?before=x", auth: .bearer(adminToken)).status == 400)
    }

    @Test func theAuditLogCannotBeChangedThroughTheAPIAndExports() async throws {
        #expect(try await stack.request("DELETE", "/api/audit", auth: .bearer(adminToken)).status == 405)
        #expect(try await stack.request("PATCH", "/api/audit", auth: .bearer(adminToken)).status == 405)
        let export = try await stack.request("GET", "/api/audit/export?action=session.", auth: .bearer(adminToken))
        #expect(export.status == 200 && export.header("Content-Type")?.hasPrefix("application/x-ndjson") == true)
        let lines = String(decoding: export.body, as: UTF8.self).split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect((entry?["action"] as? String)?.hasPrefix("session.") == true)
        }
    }

    @Test func logsHoldNoPatientDetailsPasswordsOrTokens() async throws {
        let secrets = ["P-SECRET-4711", "Jane Secretname", "seen at the secret clinic", Stack.password]
        let token = try stack.token(for: "clinician")
        let r = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": secrets[0], "patient_name": secrets[1],
                                                                      "note": secrets[2]], auth: .bearer(token))
        #expect(r.status == 201)
        #expect(try await stack.request("GET", "/api/analyses?patient_id=\(secrets[0])", auth: .bearer(token)).status == 200)
        _ = try await stack.request("POST", "/api/session", body: Data(#"{"username":"clinician","password":"wrong \#(secrets[0])"}"#.utf8),
                                    contentType: "application/json", auth: Stack.Auth.none)
        _ = try await stack.upload(image: Data("garbage".utf8), fields: ["patient_id": secrets[0]], auth: .bearer(token))
        // Let the log writes land, then read every log the stack wrote.
        try await Task.sleep(for: .milliseconds(200))
        var logs = ""
        for url in [stack.logFile, stack.varDir.appendingPathComponent("nginx/access.log"), stack.varDir.appendingPathComponent("nginx/error.log")] {
            logs += (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        }
        #expect(logs.contains("analysis_created"), "the log was read")
        for secret in secrets + [token, String(token.dropFirst(4))] {
            #expect(!logs.contains(secret), "a log holds \(secret.prefix(6))…")
        }
    }
}
