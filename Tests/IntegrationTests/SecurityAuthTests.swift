import Foundation
import Testing
import TestSupport

/// Issue 20's account findings through real nginx and the real pool: a reset or a disabling ends the
/// user's tokens, tokens make no tokens, admins see and revoke a user's tokens, failures from elsewhere
/// never keep an owner out of a known address, an ended session's cookie blocks nothing, over-long
/// passwords are refused alike for every username, and cookies are browser-session cookies.
@Suite(.serialized) final class SecurityAuthTests {
    let stack: Stack
    let adminToken: String
    /// An admin of another organisation.
    let outsiderToken: String

    init() async throws {
        stack = try await Stack.start()
        adminToken = try stack.token(forNewUser: "secadmin", role: "admin")
        outsiderToken = try stack.token(forNewUser: "outsider", role: "admin", organization: "elsewhere")
    }
    deinit { stack.stop() }

    static let newPassword = "a brand new password 42"

    func userId(_ username: String) async throws -> String {
        let users = try #require(try await stack.request("GET", "/api/users", auth: .bearer(adminToken)).json?["users"] as? [[String: Any]])
        return try #require(users.first { $0["username"] as? String == username }?["id"] as? String)
    }

    func json(_ text: String) -> Data { Data(text.utf8) }

    /// Set-Cookie lines (or `name=value` pairs) for a failure message, each value replaced by "…": a
    /// session token has no place in test output.
    static func withoutValues(_ cookies: [String]) -> String {
        cookies.map { cookie in
            let name = cookie.prefix { $0 != "=" }
            let attributes = cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
            let value = cookie.dropFirst(name.count + 1).prefix { $0 != ";" }
            return ([String(name) + (value.isEmpty ? "=" : "=…")] + attributes).joined(separator: "; ")
        }.joined(separator: " | ")
    }

    /// Reads patient data: the request an attacker with a leaked credential wants.
    func readsPatientData(_ auth: Stack.Auth) async throws -> Int {
        try await stack.request("GET", "/api/analyses?limit=1", auth: auth).status
    }

    // MARK: - Item 2: tokens

    @Test func aPasswordResetEndsTheUsersTokensAndSessions() async throws {
        try stack.addUser("resetme", role: "clinician")
        let session = try stack.syncSignIn("resetme")
        let token = try stack.syncCreateToken(session)
        #expect(try await readsPatientData(.bearer(token)) == 200)
        stack.remember([Self.newPassword])
        let id = try await userId("resetme")
        let reset = try await stack.request("POST", "/api/users/\(id)/password", body: json(#"{"password":"\#(Self.newPassword)"}"#),
                                            contentType: "application/json", auth: .bearer(adminToken))
        #expect(reset.status == 204)
        #expect(try await readsPatientData(.bearer(token)) == 401, "the old token reads patient data after the reset")
        #expect(try await readsPatientData(session) == 401, "the old session survives the reset")
        let tokens = try #require(try await stack.request("GET", "/api/users/\(id)/tokens", auth: .bearer(adminToken))
            .json?["tokens"] as? [[String: Any]])
        #expect(!tokens.isEmpty && tokens.allSatisfy { $0["revokedAt"] is String }, "revoked, as the owner's list shows")
        // The new password works and makes working credentials.
        let fresh = try stack.token(for: "resetme", password: Self.newPassword)
        #expect(try await readsPatientData(.bearer(fresh)) == 200)
    }

    @Test func disablingRevokesTokensAndEnablingRevivesNone() async throws {
        let token = try stack.token(forNewUser: "disableme", role: "clinician")
        let id = try await userId("disableme")
        func patch(_ disabled: Bool) async throws -> Int {
            try await stack.request("PATCH", "/api/users/\(id)", body: json(#"{"disabled":\#(disabled)}"#),
                                    contentType: "application/json", auth: .bearer(adminToken)).status
        }
        #expect(try await patch(true) == 200)
        #expect(try await readsPatientData(.bearer(token)) == 401)
        #expect(try await patch(false) == 200)
        #expect(try await readsPatientData(.bearer(token)) == 401, "re-enabling revived the old token")
        let fresh = try stack.token(for: "disableme")
        #expect(try await readsPatientData(.bearer(fresh)) == 200)
    }

    @Test func onlyASessionMakesTokens() async throws {
        try stack.addUser("minter", role: "clinician")
        let session = try stack.syncSignIn("minter")
        let token = try stack.syncCreateToken(session)
        let minted = try await stack.request("POST", "/api/tokens", body: json(#"{"name":"child"}"#), contentType: "application/json",
                                             auth: .bearer(token))
        if let child = minted.json?["token"] as? String { stack.remember([child]) }
        #expect(minted.status == 403, "a token made a token that would outlive its own revocation")
        #expect(try stack.syncCreateToken(session).hasPrefix("msk_"))
    }

    @Test func adminsListAndRevokeAUsersTokensInTheirOrganisationOnly() async throws {
        try stack.addUser("tokenowner", role: "clinician")
        let session = try stack.syncSignIn("tokenowner")
        let first = try stack.syncCreateToken(session), second = try stack.syncCreateToken(session)
        let id = try await userId("tokenowner")

        let listed = try await stack.request("GET", "/api/users/\(id)/tokens", auth: .bearer(adminToken))
        #expect(listed.status == 200)
        let tokens = try #require(listed.json?["tokens"] as? [[String: Any]])
        #expect(tokens.count == 2 && tokens.allSatisfy { $0["userId"] as? String == id && $0["revokedAt"] == nil })
        let body = String(decoding: listed.body, as: UTF8.self)
        #expect(!body.contains(first.dropFirst(4)) && !body.contains(second.dropFirst(4)), "no secret in the list")
        let firstId = try #require(tokens.first?["id"] as? String)

        #expect(try await stack.request("GET", "/api/users/\(id)/tokens", auth: .bearer(second)).status == 403, "clinicians may not")
        #expect(try await stack.request("GET", "/api/users/\(id)/tokens", auth: .bearer(outsiderToken)).status == 404)
        #expect(try await stack.request("DELETE", "/api/users/\(id)/tokens/\(firstId)", auth: .bearer(outsiderToken)).status == 404)
        #expect(try await readsPatientData(.bearer(first)) == 200, "another organisation's admin revoked nothing")

        #expect(try await stack.request("DELETE", "/api/users/\(id)/tokens/\(firstId)", auth: .bearer(adminToken)).status == 204)
        #expect(try await readsPatientData(.bearer(first)) == 401)
        #expect(try await readsPatientData(.bearer(second)) == 200)
        #expect(try await stack.request("DELETE", "/api/users/\(id)/tokens/\(firstId)", auth: .bearer(adminToken)).status == 404)

        // Audited under the organisation: what the admin did, to which user and which token.
        let audit = try #require(try await stack.request("GET", "/api/audit?action=token.&limit=1000", auth: .bearer(adminToken))
            .json?["entries"] as? [[String: Any]])
        let admins = audit.filter { $0["actorUsername"] as? String == "secadmin" && $0["recordId"] as? String != nil }
            .map { "\($0["action"] as? String ?? "?") \($0["outcome"] as? String ?? "?") \($0["recordId"] as? String ?? "?")" }
        #expect(admins.contains("token.list success \(id)"))
        #expect(admins.contains("token.revoke success \(firstId)"))
        #expect(admins.contains("token.revoke not_found \(firstId)"))
    }

    // MARK: - Item 4: throttling

    /// What curl saw of one answer.
    struct Answer {
        var status: Int
        var setCookies: [String]
        var retryAfter: Int?
        var body: Data
    }

    /// One request through nginx from a loopback address of our choosing (curl binds it), so that nginx's
    /// REMOTE_ADDR, the address the throttle counts, differs per "client". Every Set-Cookie header apart.
    func curl(_ method: String, _ path: String, body: String? = nil, cookie: String? = nil, from address: String = "127.0.0.1") throws -> Answer {
        let folder = TemporaryFolder("mediscope-curl")
        let bodyFile = folder.appending("body")
        var args = ["-sS", "--interface", address, "-X", method, "-D", "-", "-o", bodyFile.path]
        if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
        if let cookie { args += ["-H", "Cookie: \(cookie)"] }
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"), args + [stack.baseURL + path])
        guard run.status == 0 else { throw StackError("curl failed: \(run.stderr)") }
        let lines = run.stdout.components(separatedBy: "\r\n")
        func values(_ name: String) -> [String] {
            lines.filter { $0.lowercased().hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        return Answer(status: Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0, setCookies: values("set-cookie"),
                      retryAfter: values("retry-after").first.flatMap { Int($0) }, body: (try? Data(contentsOf: bodyFile)) ?? Data())
    }

    func signIn(_ username: String, _ password: String, from address: String, cookie: String? = nil) throws -> Answer {
        try curl("POST", "/api/session", body: #"{"username":"\#(username)","password":"\#(password)"}"#, cookie: cookie, from: address)
    }

    @Test func wrongPasswordsFromManyAddressesNeverKeepTheOwnerOutOfAKnownAddress() async throws {
        try stack.addUser("targeted", role: "clinician")
        #expect(try signIn("targeted", Stack.password, from: "127.0.0.1").status == 201)   // the owner's usual address
        for n in 2...6 {
            #expect(try signIn("targeted", "guess number \(n)!", from: "127.0.0.\(n)").status == 401)
        }
        #expect(try signIn("targeted", Stack.password, from: "127.0.0.1").status == 201, "the owner was locked out of a known address")
        // A new address is slowed to one try per window / 5 (3 min), never held for the whole window.
        let slowed = try signIn("targeted", Stack.password, from: "127.0.0.7")
        #expect(slowed.status == 429)
        let wait = try #require(slowed.retryAfter)
        #expect((1...180).contains(wait), "Retry-After \(wait)")

        // The admin of the account's organisation sees the throttled attempt.
        let audit = try #require(try await stack.request("GET", "/api/audit?action=session.create&outcome=throttled&limit=1000",
                                                         auth: .bearer(adminToken)).json?["entries"] as? [[String: Any]])
        let throttled = audit.filter { $0["actorUsername"] as? String == "targeted" }
        #expect(throttled.count == 1 && throttled.first?["address"] as? String == "127.0.0.7")
        #expect(throttled.first?["organizationId"] as? String == "default")
    }

    // MARK: - Item 5: an ended session's cookie

    @Test func anEndedSessionsCookieBlocksNeitherSignInNorOpenRoutes() async throws {
        try stack.addUser("staleuser", role: "clinician")
        let session = try stack.syncSignIn("staleuser")
        guard case .session(let cookie, _, _) = session else { throw StackError("no session") }
        // Signed out (as an idle expiry, a reset or a disabling would): the session is gone, the cookie stays.
        #expect(try await stack.request("DELETE", "/api/session", auth: session).status == 204)

        let health = try curl("GET", "/api/health", cookie: cookie)
        #expect(health.status == 200, "an ended session's cookie made /api/health answer \(health.status)")
        #expect(health.setCookies.contains { $0.hasPrefix("mediscope_session=;") && $0.contains("Max-Age=0") }, "\(SecurityAuthTests.withoutValues(health.setCookies))")
        #expect(health.setCookies.contains { $0.hasPrefix("mediscope_csrf=;") && $0.contains("Max-Age=0") }, "\(SecurityAuthTests.withoutValues(health.setCookies))")

        let again = try signIn("staleuser", Stack.password, from: "127.0.0.1", cookie: cookie)
        #expect(again.status == 201, "signing in with the right password and the old cookie answered \(again.status)")
        let sessionCookies = again.setCookies.filter { $0.hasPrefix("mediscope_session=") }
        #expect(sessionCookies.count == 1 && sessionCookies.first?.hasPrefix("mediscope_session=;") == false,
                "the new session cookie, and no expiry of it: \(SecurityAuthTests.withoutValues(sessionCookies))")

        let me = try curl("GET", "/api/me", cookie: cookie)
        #expect(me.status == 401)
        #expect(me.setCookies.contains { $0.hasPrefix("mediscope_session=;") && $0.contains("Max-Age=0") }, "\(SecurityAuthTests.withoutValues(me.setCookies))")
    }

    // MARK: - Item 7: over-long passwords

    @Test func overLongPasswordsGetOneAnswerForEveryUsername() async throws {
        let overLong = String(repeating: "x", count: 2000)
        let known = try signIn("clinician", overLong, from: "127.0.0.20")
        let unknown = try signIn("nobody-by-this-name", overLong, from: "127.0.0.20")
        #expect(known.status == 422 && unknown.status == 422, "\(known.status) / \(unknown.status)")
        #expect(known.body == unknown.body)
        let detail = try #require((try? JSONSerialization.jsonObject(with: known.body) as? [String: Any])?["detail"] as? String)
        #expect(detail.contains("longer than 1024 bytes"), "refused for its length, before any account was looked at: \(detail)")
    }

    // MARK: - Item 12: cookies

    @Test func cookiesAreBrowserSessionCookiesForThisHostOnly() throws {
        let r = try signIn("clinician", Stack.password, from: "127.0.0.1")
        #expect(r.status == 201)
        let session = try #require(r.setCookies.first { $0.hasPrefix("mediscope_session=") })
        let csrf = try #require(r.setCookies.first { $0.hasPrefix("mediscope_csrf=") })
        for cookie in [session, csrf] {
            let attributes = cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(!attributes.contains { $0.lowercased().hasPrefix("max-age") || $0.lowercased().hasPrefix("expires") },
                    "a browser-session cookie: \(SecurityAuthTests.withoutValues([cookie]))")
            #expect(attributes.contains("Path=/") && attributes.contains("SameSite=Strict"))
            #expect(!attributes.contains { $0.lowercased().hasPrefix("domain") })
            #expect(!attributes.contains("Secure"), "plain HTTP and no https public URL: not Secure")
        }
        #expect(session.contains("HttpOnly") && !csrf.contains("HttpOnly"))
    }
}

extension SecurityAuthTests {
    /// A deployment whose public URL is https while nginx speaks plain HTTP to the client (TLS ended in
    /// front of it): cookies are Secure and `__Host-` prefixed all the same, and the dashboard works with them.
    @Suite(.serialized) final class HTTPSPublicURL {
        let stack: Stack

        init() async throws {
            stack = try await Stack.start(settings: ["PUBLIC_URL": "https://mediscope.example.org"])
            try stack.addUser(BrowserStack.admin, role: "admin")
        }
        deinit { stack.stop() }

        @Test func anHTTPSPublicURLMakesCookiesSecureAndHostPrefixed() async throws {
            let r = try stack.syncRequest("POST", "/api/session", body: Data(#"{"username":"clinician","password":"\#(Stack.password)"}"#.utf8),
                                          contentType: "application/json", auth: Stack.Auth.none)
            #expect(r.status == 201)
            // Foundation joins several Set-Cookie headers with ", "; our cookies hold no comma.
            let cookies = (r.header("Set-Cookie") ?? "").components(separatedBy: ", ")
            let session = try #require(cookies.first { $0.hasPrefix("__Host-mediscope_session=") }, "\(SecurityAuthTests.withoutValues(cookies))")
            let csrf = try #require(cookies.first { $0.hasPrefix("__Host-mediscope_csrf=") }, "\(SecurityAuthTests.withoutValues(cookies))")
            for cookie in [session, csrf] {
                let attributes = cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
                // What __Host- demands: Secure, Path=/, no Domain. And a browser-session cookie.
                #expect(attributes.contains("Secure") && attributes.contains("Path=/"), "\(SecurityAuthTests.withoutValues([cookie]))")
                #expect(!attributes.contains { $0.lowercased().hasPrefix("domain") || $0.lowercased().hasPrefix("max-age") }, "\(SecurityAuthTests.withoutValues([cookie]))")
            }
            #expect(!cookies.contains { $0.hasPrefix("mediscope_") }, "no unprefixed cookie: \(SecurityAuthTests.withoutValues(cookies))")

            let pair = try #require(session.split(separator: ";").first.map(String.init))
            let token = String(pair.dropFirst("__Host-mediscope_session=".count))
            let csrfToken = try #require(r.json?["csrfToken"] as? String)
            #expect(try await stack.request("GET", "/api/me", auth: .session(cookie: pair, csrf: nil, origin: nil)).status == 200)
            let made = try await stack.request("POST", "/api/tokens", body: Data(#"{"name":"cli"}"#.utf8), contentType: "application/json",
                                               auth: .session(cookie: pair, csrf: csrfToken, origin: stack.baseURL))
            if let minted = made.json?["token"] as? String { stack.remember([minted]) }
            #expect(made.status == 201)
            // The unprefixed name is not read on this deployment (a sibling host could set it), and is expired.
            let legacy = try await stack.request("GET", "/api/me", auth: .session(cookie: "mediscope_session=\(token)", csrf: nil, origin: nil))
            #expect(legacy.status == 401)
            #expect(legacy.header("Set-Cookie")?.contains("mediscope_session=; Path=/; Max-Age=0") == true)
        }

        /// The dashboard reads the prefixed CSRF cookie for its unsafe requests (Chromium keeps Secure cookies
        /// from http://127.0.0.1, a potentially trustworthy origin).
        @Test func theDashboardWorksWithHostPrefixedCookies() async throws {
            guard case .session(let cookie, _, _) = try stack.syncSignIn("clinician") else { throw StackError("no session") }
            #expect(cookie.hasPrefix("__Host-mediscope_session="), "the browser is to meet prefixed cookies: \(SecurityAuthTests.withoutValues([cookie]))")
            try await BrowserTests().scenario("clinician_flow", on: stack)
        }
    }
}
