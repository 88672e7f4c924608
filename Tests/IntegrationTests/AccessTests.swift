import Foundation
import MediscopeApp
import Testing

/// Who may call what, through real nginx and the real pool.
@Suite(.serialized) final class AccessTests {
    let stack: Stack
    var clinicianToken = ""
    var adminToken = ""
    var otherOrgToken = ""
    var adminSession: Stack.Auth = .none
    var clinicianId = ""

    init() async throws {
        // Idle expiry short enough to test, long enough that a busy machine (browser tests and other stacks
        // share two cores) never lets a session lapse between two requests of one test.
        stack = try await Stack.start(settings: ["SESSION_IDLE_SECONDS": String(Self.idleSeconds), "SIGNIN_FAILURE_WINDOW_SECONDS": String(Self.failureWindowSeconds)])
        try stack.addUser("admin1", role: "admin")
        try stack.addUser("other", role: "clinician", organization: "elsewhere")
        adminSession = try stack.syncSignIn("admin1")
        adminToken = try stack.syncCreateToken(adminSession)
        clinicianToken = try stack.token(for: "clinician")
        otherOrgToken = try stack.token(for: "other")
        let me = try stack.syncRequest("GET", "/api/me", auth: .bearer(clinicianToken))
        clinicianId = ((me.json?["user"] as? [String: Any])?["id"] as? String) ?? ""
    }
    deinit { stack.stop() }
    static let idleSeconds = 15.0
    /// Five failed sign-ins (an argon2 hash each) must fit in it on a loaded machine.
    static let failureWindowSeconds = 30.0

    /// The policy, written out by hand: every route of the API must be here.
    static let table: [String: Access] = [
        "POST /api/analyses": .clinical,
        "POST /api/uploads/check": .clinical,
        "GET /api/analyses": .clinical,
        "GET /api/analyses/{id}": .clinical,
        "DELETE /api/analyses/{id}": .clinical,
        "GET /api/analyses/{id}/scan.jpg": .clinical,
        "GET /api/analyses/{id}/heatmaps/{file}": .clinical,
        "GET /analyses/{id}/report": .clinical,
        "GET /api/analyses/{id}/report": .clinical,
        "PUT /api/analyses/{id}/report": .clinical,
        "POST /api/analyses/{id}/report/sign": .clinical,
        "POST /api/analyses/{id}/report/amend": .clinical,
        "GET /api/analyses/{id}/fhir": .clinical,
        "GET /api/analyses/{id}/dicom/sr": .clinical,
        "GET /api/analyses/{id}/dicom/sc/{result}": .clinical,
        "POST /api/dicom/fields": .clinical,
        "POST /dicom-web/studies": .clinical,
        "POST /dicom-web/studies/{study}": .clinical,
        "GET /api/studies": .clinical,
        "GET /api/studies/{study}": .clinical,
        "POST /api/session": .everyone,
        "DELETE /api/session": .signedIn,
        "GET /api/me": .signedIn,
        "GET /api/tokens": .signedIn,
        "POST /api/tokens": .signedIn,
        "DELETE /api/tokens/{id}": .signedIn,
        "GET /api/users": .admin,
        "POST /api/users": .admin,
        "PATCH /api/users/{id}": .admin,
        "POST /api/users/{id}/password": .admin,
        "GET /api/users/{id}/tokens": .admin,
        "DELETE /api/users/{userId}/tokens/{id}": .admin,
        "GET /api/audit": .admin,
        "GET /api/audit/export": .admin,
        "GET /api/models": .signedIn,
        "GET /api/health": .everyone,
        "GET /api/ready": .everyone,
        "GET /api/status": .operatorOrAdmin,
        "GET /api/metrics": .operatorOrAdmin,
    ]

    @Test func everyRouteIsInTheTable() {
        #expect(Set(API.routeSignatures) == Set(Self.table.keys), "routes without a policy entry, or entries without a route")
        for (route, access) in Self.table { #expect(API.routeAccess[route] == access, "\(route)") }
    }

    func newAnalysis() async throws -> String {
        let r = try await stack.upload(image: try Scans.jpeg, auth: .bearer(clinicianToken))
        return try #require(r.json?["id"] as? String)
    }

    /// A concrete path for a pattern; destructive routes get a fresh target each time.
    func path(_ pattern: String, method: String, token: String) async throws -> String {
        var p = pattern
        if p.contains("{id}") {
            let id: String
            if p.hasPrefix("/api/users") { id = clinicianId }
            else if p.hasPrefix("/api/tokens") {
                id = try #require(try await stack.request("POST", "/api/tokens", body: Data(#"{"name":"x"}"#.utf8),
                                                          contentType: "application/json", auth: .bearer(token))
                    .json.flatMap { ($0["info"] as? [String: Any])?["id"] as? String } ?? "01NOSUCHTOKEN0000000000000")
            } else { id = try await newAnalysis() }
            p = p.replacingOccurrences(of: "{id}", with: id)
        }
        return p.replacingOccurrences(of: "{file}", with: "tumor-presence.webp").replacingOccurrences(of: "{userId}", with: clinicianId)
    }

    @Test func eachRoleGetsExactlyItsAccess() async throws {
        for (route, access) in Self.table.sorted(by: { $0.key < $1.key }) {
            let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
            let (method, pattern) = (parts[0], parts[1])
            let body = method == "GET" || method == "DELETE" ? nil : Data("{}".utf8)
            for (role, token) in [("none", ""), ("clinician", clinicianToken), ("admin", adminToken)] {
                let auth: Stack.Auth = token.isEmpty ? .none : .bearer(token)
                let target = try await path(pattern, method: method, token: token.isEmpty ? clinicianToken : token)
                let status = try await stack.request(method, target, body: body, contentType: body == nil ? nil : "application/json",
                                                     auth: auth).status
                let expected: Set<Int>?
                switch (access, role) {
                case (.everyone, _), (.operatorOrAdmin, _): expected = nil            // allowed (nginx is on loopback)
                case (_, "none"): expected = [401]
                case (.clinical, "admin"), (.admin, "clinician"): expected = [403]
                // Every caller here holds a bearer token, and tokens are made from a session only (SecurityAuthTests).
                case _ where route == "POST /api/tokens": expected = [403]
                default: expected = nil
                }
                if let expected {
                    #expect(expected.contains(status), "\(role) \(route) -> \(status)")
                } else {
                    #expect(status != 401 && status != 403, "\(role) \(route) -> \(status) but should be allowed")
                }
            }
        }
    }

    @Test func anotherOrganisationsRecordsAreNotFound() async throws {
        let id = try await newAnalysis()
        let other: Stack.Auth = .bearer(otherOrgToken)
        for p in ["/api/analyses/\(id)", "/api/analyses/\(id)/scan.jpg", "/api/analyses/\(id)/heatmaps/tumor-presence.webp"] {
            #expect(try await stack.request("GET", p, auth: other).status == 404, "\(p)")
        }
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)", auth: other).status == 404)
        let list = try await stack.request("GET", "/api/analyses?limit=100", auth: other)
        #expect((list.json?["items"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == false)
        #expect(try await stack.request("GET", "/api/analyses/\(id)", auth: .bearer(clinicianToken)).status == 200, "still there")
    }

    @Test func cookieRequestsNeedOriginAndCSRFToken() async throws {
        guard case .session(let cookie, let csrf, let origin) = try stack.syncSignIn("clinician") else { return }
        let jpeg = try Scans.jpeg
        #expect(try await stack.upload(image: jpeg, auth: .session(cookie: cookie, csrf: nil, origin: origin)).status == 403)
        #expect(try await stack.upload(image: jpeg, auth: .session(cookie: cookie, csrf: "wrong", origin: origin)).status == 403)
        #expect(try await stack.upload(image: jpeg, auth: .session(cookie: cookie, csrf: csrf, origin: "https://evil.example")).status == 403)
        #expect(try await stack.upload(image: jpeg, auth: .session(cookie: cookie, csrf: csrf, origin: nil)).status == 403)
        let ok = try await stack.upload(image: jpeg, auth: .session(cookie: cookie, csrf: csrf, origin: origin))
        #expect(ok.status == 201)
        let id = try #require(ok.json?["id"] as? String)
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)", auth: .session(cookie: cookie, csrf: nil, origin: origin)).status == 403)
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)", auth: .session(cookie: cookie, csrf: csrf, origin: origin)).status == 204)
        // Reads need no token.
        #expect(try await stack.request("GET", "/api/analyses", auth: .session(cookie: cookie, csrf: nil, origin: nil)).status == 200)
    }

    @Test func sessionCookieIsHardened() throws {
        let r = try stack.syncRequest("POST", "/api/session", body: Data(#"{"username":"clinician","password":"\#(Stack.password)"}"#.utf8),
                                      contentType: "application/json", auth: Stack.Auth.none)
        let cookie = try #require(r.header("Set-Cookie"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
        #expect(!cookie.contains("Secure"), "plain HTTP on loopback: Secure only over TLS")
    }

    @Test func throttlingKicksInAndRecovers() async throws {
        try stack.addUser("victim", role: "clinician")
        func attempt(_ password: String) async throws -> Stack.Response {
            try await stack.request("POST", "/api/session", body: Data(#"{"username":"victim","password":"\#(password)"}"#.utf8),
                                    contentType: "application/json", auth: Stack.Auth.none)
        }
        for _ in 0..<5 { #expect(try await attempt("wrong password!!").status == 401) }
        let blocked = try await attempt(Stack.password)
        #expect(blocked.status == 429 && blocked.header("Retry-After").flatMap(Int.init) ?? 0 > 0)
        // A wrong user and a wrong password look the same.
        let unknown = try await stack.request("POST", "/api/session", body: Data(#"{"username":"nobody","password":"x"}"#.utf8),
                                              contentType: "application/json", auth: Stack.Auth.none)
        let wrong = try await stack.request("POST", "/api/session", body: Data(#"{"username":"clinician","password":"x"}"#.utf8),
                                            contentType: "application/json", auth: Stack.Auth.none)
        #expect(unknown.status == 401 && wrong.status == 401 && unknown.body == wrong.body)
        // A refused attempt is no failure, so asking again until the window has passed is safe.
        #expect(try await eventually(timeout: 4 * Self.failureWindowSeconds, every: .seconds(1)) {
            try await attempt(Stack.password).status == 201
        }, "the window passed")
    }

    @Test func sessionsExpireAndSignOutAndRevocationActAtOnce() async throws {
        let session = try stack.syncSignIn("clinician")
        #expect(try await stack.request("GET", "/api/me", auth: session).status == 200)
        try await Task.sleep(for: .seconds(Self.idleSeconds + 0.5))
        #expect(try await stack.request("GET", "/api/me", auth: session).status == 401, "idle expiry")

        let fresh = try stack.syncSignIn("clinician")
        #expect(try await stack.request("DELETE", "/api/session", auth: fresh).status == 204)
        #expect(try await stack.request("GET", "/api/me", auth: fresh).status == 401, "signed out")

        let token = try stack.token(for: "clinician")
        #expect(try await stack.request("GET", "/api/me", auth: .bearer(token)).status == 200)
        let tokens = try #require(try await stack.request("GET", "/api/tokens", auth: .bearer(token)).json?["tokens"] as? [[String: Any]])
        let id = try #require(tokens.last?["id"] as? String)
        #expect(try await stack.request("DELETE", "/api/tokens/\(id)", auth: .bearer(token)).status == 204)
        #expect(try await stack.request("GET", "/api/me", auth: .bearer(token)).status == 401, "revoked")
    }

    @Test func adminManagesUsersAndClinicianCanThenSignIn() async throws {
        let created = try await stack.request("POST", "/api/users",
            body: Data(#"{"username":"newdoc","password":"another long password","role":"clinician"}"#.utf8),
            contentType: "application/json", auth: .bearer(adminToken))
        #expect(created.status == 201)
        let id = try #require(created.json?["id"] as? String)
        let session = try stack.syncSignIn("newdoc", password: "another long password")
        #expect(try await stack.request("GET", "/api/me", auth: session).status == 200)
        let disabled = try await stack.request("PATCH", "/api/users/\(id)", body: Data(#"{"disabled":true}"#.utf8),
                                               contentType: "application/json", auth: .bearer(adminToken))
        #expect(disabled.status == 200 && disabled.json?["disabled"] as? Bool == true)
        #expect(try await stack.request("GET", "/api/me", auth: session).status == 401, "disabling ends sessions")
        let weak = try await stack.request("POST", "/api/users", body: Data(#"{"username":"weak","password":"short","role":"clinician"}"#.utf8),
                                           contentType: "application/json", auth: .bearer(adminToken))
        #expect(weak.status == 422)
    }
}
