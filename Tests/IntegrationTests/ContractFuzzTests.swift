import Foundation
import Testing
import TestSupport

/// The API's description against the real stack: public/openapi.json is valid OpenAPI 3.1 (openapi-spec-validator,
/// pinned), nginx serves it open and cacheable at GET /api/openapi.json, and schemathesis (pinned) finds nothing
/// wrong in what nginx and the pools answer, fuzzing every operation as a clinician and as an admin
/// (Tests/Contract/schemathesis.sh). That every route is described is OpenAPICoverageTests'.
@Suite(.serialized) struct ContractFuzzTests {
    static let contract = Repository.root.appendingPathComponent("Tests/Contract")
    static let document = Repository.root.appendingPathComponent("public/openapi.json")
    /// Seconds of fuzzing for each caller; the whole step stays within about 4 minutes on 2 cores.
    static let clinicianSeconds = 90, sessionSeconds = 40, adminSeconds = 50

    /// The contract venv's python (Tests/Contract/setup-venv.sh: a no-op when current, as `make test` made it).
    static func python() throws -> URL {
        let run = try runProcess(URL(fileURLWithPath: "/bin/bash"), [contract.appendingPathComponent("setup-venv.sh").path], timeout: 600)
        let path = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        try #require(run.status == 0 && FileManager.default.isExecutableFile(atPath: path), "setup-venv.sh failed: \(run.stderr)")
        return URL(fileURLWithPath: path)
    }

    @Test func documentIsValidOpenAPI31() throws {
        let run = try runProcess(try Self.python(), ["-m", "openapi_spec_validator", Self.document.path], timeout: 120)
        #expect(run.status == 0, "openapi-spec-validator: \(run.stdout)\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.document)) as? [String: Any])
        #expect((json["openapi"] as? String)?.hasPrefix("3.1.") == true)
    }

    /// Open (no credential; a bad one does not matter, nginx reads none), cacheable and revalidated, the file itself.
    @Test func nginxServesTheDocumentOpenAndCacheable() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let r = try await stack.request("GET", "/api/openapi.json", auth: Stack.Auth.none)
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "application/json")
        #expect(r.header("Cache-Control") == "public, no-cache")
        #expect(r.header("Access-Control-Allow-Origin") == "*")
        #expect(r.body == (try Data(contentsOf: Self.document)))
        let etag = try #require(r.header("ETag"))
        let again = try await stack.request("GET", "/api/openapi.json", auth: .bearer("msk_not-a-token"), headers: ["If-None-Match": etag])
        #expect(again.status == 304)
        #expect(try await stack.request("POST", "/api/openapi.json", body: Data("{}".utf8), contentType: "application/json").status == 405)
    }

    /// schemathesis as a clinician with an API token, as the same clinician in a browser session (cookie, CSRF token
    /// and Origin; sign-out not called), and as an admin with a token. Each caller's own user and tokens are protected
    /// from its destructive calls (hooks.py), so revoking or disabling itself cannot end a run early.
    @Test func schemathesisFindsNothingAsAClinicianOrAnAdmin() async throws {
        _ = try Self.python()   // the venv before the stack: its first creation may take a while
        let stack = try await Stack.start()
        defer { stack.stop() }
        // Every credential first: the fuzzed sign-ins fail often enough to throttle this address's sign-ins (429).
        let clinician = try stack.token(forNewUser: "contract-clinician", role: "clinician")
        guard case .session(let cookie, let csrf?, _) = try stack.syncSignIn("contract-clinician") else {
            throw StackError("no session for contract-clinician")
        }
        let sessionToken = String(cookie.split(separator: "=", maxSplits: 1).last ?? "")
        stack.remember([sessionToken, csrf])
        let session = "session=\(sessionToken),csrf=\(csrf)"
        let admin = try stack.token(forNewUser: "contract-admin", role: "admin")
        for (caller, credential, token, seconds) in [("clinician", clinician, clinician, Self.clinicianSeconds),
                                                     ("clinician session", session, clinician, Self.sessionSeconds),
                                                     ("admin", admin, admin, Self.adminSeconds)] {
            let me = try stack.syncRequest("GET", "/api/me", auth: .bearer(token)).json?["user"] as? [String: Any]
            let tokens = try stack.syncRequest("GET", "/api/tokens", auth: .bearer(token)).json?["tokens"] as? [[String: Any]] ?? []
            let protected = ([me?["id"] as? String] + tokens.map { $0["id"] as? String }).compactMap { $0 }
            let run = try await runProcess(URL(fileURLWithPath: "/bin/bash"),
                                     [Self.contract.appendingPathComponent("schemathesis.sh").path, stack.baseURL, credential,
                                      protected.joined(separator: ","), String(seconds)],
                                     timeout: Double(seconds) + 120)
            print("contract fuzzing as \(caller): \(Self.summary(run.stdout))")
            #expect(!run.timedOut, "schemathesis as \(caller) overran its time cap")
            #expect(run.status == 0, "schemathesis as \(caller) found problems:\n\(Self.report(run.stdout))\n\(run.stderr.suffix(2000))")
        }
    }

    /// The closing line ("8039 generated, 8039 passed", "No issues found in 90.01s").
    static func summary(_ output: String) -> String {
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let cases = lines.last { $0.contains(" generated") } ?? "no test cases"
        let closing = lines.last { $0.hasPrefix("=") && $0.count > 10 }?.trimmingCharacters(in: CharacterSet(charactersIn: "= ")) ?? ""
        return "\(cases); \(closing)"
    }

    /// What a failure needs to be read: the report from its FAILURES / ERRORS section on (each with a curl to rerun).
    static func report(_ output: String) -> String {
        let start = ["= FAILURES =", "= ERRORS =", "SUMMARY"].compactMap { output.range(of: $0)?.lowerBound }.min()
        return String(output[(start ?? output.startIndex)...].suffix(20_000))
    }
}
