import Foundation
import MediscopeAuth
import MediscopeServer
import Testing
import TestSupport
@testable import MediscopeApp

/// The API's rules through the router, in-process (`RouterTestClient`): who may call what, what a bad
/// request is told, what the audit log names. The same rules through real nginx are in IntegrationTests.
@Suite(.serialized) struct APIRulesTests {
    /// A path for `pattern` with well-formed values in its parameters.
    static func path(_ pattern: String) -> String {
        pattern.replacingOccurrences(of: "{id}", with: "01ARZ3NDEKTSV4RRFFQ69G5FAV").replacingOccurrences(of: "{file}", with: "tumor.webp")
    }

    @Test func everyRouteThatNeedsACallerRefusesAnAnonymousOne() throws {
        let client = try RouterTestClient()
        let closed = API.specs.filter { $0.access.needsCaller }
        #expect(closed.count >= 20)
        for spec in closed {
            let r = client.send(spec.method, Self.path(spec.pattern))
            #expect(r.status == 401, "\(spec.method) \(spec.pattern): \(r.status) \(r.detail)")
        }
        // Status and metrics: loopback operators, or an admin; nobody else.
        for spec in API.specs where spec.access == .operatorOrAdmin {
            #expect(client.send(spec.method, spec.pattern).status == 401, "\(spec.pattern) from afar")
            #expect(client.send(spec.method, spec.pattern, remoteAddress: "127.0.0.1").status == 200, "\(spec.pattern) on loopback")
        }
        #expect(client.send("GET", "/api/health").status == 200)
    }

    @Test func clinicianAndAdminEachReachOnlyTheirOwnRoutes() throws {
        let client = try RouterTestClient()
        let (_, clinician) = try client.user("dr-router", role: .clinician)
        let (_, admin) = try client.user("admin-router", role: .admin)
        #expect(client.send("GET", "/api/analyses", token: clinician).status == 200)
        #expect(client.send("GET", "/api/users", token: clinician).status == 403)
        let adminReadsPatients = client.send("GET", "/api/analyses", token: admin)
        #expect(adminReadsPatients.status == 403 && adminReadsPatients.detail.contains("clinicians"))
        #expect(client.send("GET", "/api/users", token: admin).status == 200)
        #expect(client.send("GET", "/api/status", token: admin).status == 200, "an admin reads the status from anywhere")
        #expect(client.send("GET", "/api/analyses", token: "msk_not-a-token").status == 401)
    }

    @Test func badQueriesAndIdsAreClearErrors() throws {
        let client = try RouterTestClient()
        let (_, clinician) = try client.user("dr-queries", role: .clinician)
        for query in ["limit=0", "limit=101", "limit=ten", "patient_id=A&patient_id=B"] {
            let r = client.send("GET", "/api/analyses?\(query)", token: clinician)
            #expect(r.status == 400 && !r.detail.isEmpty, "\(query): \(r.status) \(r.detail)")
        }
        let notAnID = client.send("GET", "/api/analyses/not-an-id", token: clinician)
        #expect(notAnID.status == 404 && notAnID.detail.contains("no analysis"))
        let noImage = client.send("POST", "/api/analyses", token: clinician,
                                  headers: ["content-type": "multipart/form-data; boundary=XyZ"],
                                  body: Array("--XyZ\r\nContent-Disposition: form-data; name=\"patient_id\"\r\n\r\nP-1\r\n--XyZ--\r\n".utf8))
        #expect(noImage.status == 400 && noImage.detail.contains("`image`"), "\(noImage.detail)")
    }

    @Test func aJSONKeyGivenTwiceIsRefused() throws {
        let client = try RouterTestClient()
        let (_, admin) = try client.user("admin-json", role: .admin)
        let r = client.sendJSON("POST", "/api/users", #"{"username":"a1","username":"root","password":"correct horse battery staple","role":"clinician"}"#,
                                token: admin)
        #expect(r.status == 400, "\(r.status) \(r.detail)")
        #expect(try client.services.accounts().listUsers(organizationId: "org-a").map(\.username).sorted() == ["admin-json"])
    }

    /// A browser session's unsafe request needs this site's Origin and the session's CSRF token; the audit
    /// entry of what it creates names the new record (the handler hands the id over, no header parsing).
    @Test func aSessionNeedsOriginAndCSRFAndTheAuditNamesWhatItCreated() throws {
        let client = try RouterTestClient()
        let (user, _) = try client.user("dr-session", role: .clinician)
        let (cookie, csrf) = try client.session(user)
        let body = Array(#"{"name":"laptop"}"#.utf8)
        let origin = "http://mediscope.test"
        let noOrigin = client.send("POST", "/api/tokens", headers: ["cookie": cookie, "content-type": "application/json", "x-csrf-token": csrf], body: body)
        #expect(noOrigin.status == 403 && noOrigin.detail.contains("Origin"))
        let badToken = client.send("POST", "/api/tokens", headers: ["cookie": cookie, "content-type": "application/json", "origin": origin,
                                                                    "x-csrf-token": "wrong"], body: body)
        #expect(badToken.status == 403 && badToken.detail.contains("CSRF"))
        let made = client.send("POST", "/api/tokens", headers: ["cookie": cookie, "content-type": "application/json", "origin": origin,
                                                                "x-csrf-token": csrf], body: body)
        #expect(made.status == 201, "\(made.detail)")
        let id = try #require((made.json?["info"] as? [String: Any])?["id"] as? String)
        #expect(made.header("Location") == "/api/tokens/\(id)" && made.createdID == id)
        let entries = try client.audit().filter { $0.action == "token.create" }
        // The two refusals are in the trail too, before the intent and the success of the third try.
        #expect(entries.map(\.outcome) == ["denied", "denied", "started", "success"], "\(entries)")
        #expect(entries.last?.recordId == id, "the audit entry names the token made")
    }

    /// The whole upload in-process: the real pipeline and models, the SQLite store; the 201 carries the
    /// input check, the audit entry the new record, and another organisation is told "not found" while
    /// the owner's trail records the attempt.
    @Test func anUploadRunsInProcessAndOnlyItsOrganisationSeesIt() throws {
        let client = try RouterTestClient()
        let (_, clinician) = try client.user("dr-upload", role: .clinician)
        let (_, outsider) = try client.user("dr-elsewhere", role: .clinician, organization: "org-b")
        let scan = try Data(contentsOf: Repository.root.appendingPathComponent("Tests/Artifacts/reference/scans/scan_baseline.jpg"))
        var body = Array("--XyZ\r\nContent-Disposition: form-data; name=\"patient_id\"\r\n\r\nP-ROUTER-1\r\n".utf8)
        body += Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
        body += Array(scan) + Array("\r\n--XyZ--\r\n".utf8)
        let created = client.send("POST", "/api/analyses", token: clinician,
                                  headers: ["content-type": "multipart/form-data; boundary=XyZ"], body: body)
        #expect(created.status == 201, "\(created.detail)")
        let id = try #require(created.json?["id"] as? String)
        #expect(created.createdID == id && created.header("Location") == "/api/analyses/\(id)")
        #expect((created.json?["inputCheck"] as? [String: Any])?["verdict"] as? String == "in_scope")
        #expect(try client.audit().contains { $0.action == "analysis.create" && $0.outcome == "success" && $0.recordId == id })

        #expect(client.send("GET", "/api/analyses/\(id)", token: clinician).status == 200)
        let elsewhere = client.send("GET", "/api/analyses/\(id)", token: outsider)
        #expect(elsewhere.status == 404, "another organisation's analysis is not found, never forbidden")
        #expect(try client.audit("org-a").contains { $0.action == "analysis.view" && $0.outcome == "denied" && $0.recordId == id },
                "the owner's trail records the attempt")
    }
}
