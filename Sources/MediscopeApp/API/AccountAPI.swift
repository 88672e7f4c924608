import Foundation
import MediscopeAuth
import MediscopeServer

/// Sign-in and sign-out, the caller's own tokens, user management and the audit log.
enum AccountAPI {
    static let routes: [RouteSpec] = [
        RouteSpec(method: "POST", pattern: "/api/session", open: .everyone, audit: nil) { s, req, _, _ throws(Problem) in
            try signIn(s, req)
        },
        RouteSpec(method: "DELETE", pattern: "/api/session", access: .signedIn, audit: nil) { s, req, _, c throws(Problem) in
            try signOut(s, req, c)
        },
        RouteSpec(method: "GET", pattern: "/api/me", access: .signedIn, audit: nil) { _, _, _, c throws(Problem) in
            .json(MeBody(user: UserBody(c.user), authentication: c.methodName), headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "GET", pattern: "/api/tokens", access: .signedIn, audit: nil) { s, _, _, c throws(Problem) in
            .json(["tokens": try Guard.accountsCall(s) { try $0.tokens(userId: c.user.id) }])
        },
        RouteSpec(method: "POST", pattern: "/api/tokens", access: .signedIn, audit: "token.create") { s, req, _, c throws(Problem) in
            // A token made with a token would outlive the revocation of the one that made it.
            guard c.usesCookie else { throw Problem(status: 403, detail: "API tokens are made from a signed-in session, not with a token") }
            struct Body: Decodable { var name: String }
            let body: Body = try decodeJSON(req)
            let name = body.name.trimmingCharacters(in: .whitespaces)
            guard (1...64).contains(name.count) else { throw Problem.badRequest("`name` must be 1 to 64 characters") }
            let (token, info) = try Guard.accountsCall(s) { try $0.createToken(userId: c.user.id, name: name) }
            struct Created: Encodable { var token: String; var info: APIToken; var notice: String }
            return .created(Created(token: token, info: info, notice: "Shown once: store it now."), id: info.id,
                            location: "/api/tokens/\(info.id)", headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "DELETE", pattern: "/api/tokens/{id}", access: .signedIn, audit: "token.revoke") { s, _, p, c throws(Problem) in
            guard try Guard.accountsCall(s, { try $0.revokeToken(id: p["id"], userId: c.user.id) }) else {
                throw Problem.notFound("no token \(p["id"].prefix(40))")
            }
            return .noContent
        },
        RouteSpec(method: "GET", pattern: "/api/users", access: .admin, audit: nil) { s, _, _, c throws(Problem) in
            let users = try Guard.accountsCall(s) { try $0.listUsers(organizationId: c.user.organizationId) }
            return .json(["users": users.map(UserBody.init)], headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "POST", pattern: "/api/users", access: .admin, audit: "user.create") { s, req, _, c throws(Problem) in
            struct Body: Decodable { var username: String; var password: String; var role: String; var displayName: String? }
            let body: Body = try decodeJSON(req)
            guard let role = Role(rawValue: body.role) else { throw Problem.badRequest("`role` must be admin or clinician") }
            let user = try Guard.accountsCall(s) {
                try $0.addUser(username: body.username, password: body.password, role: role,
                               organizationId: c.user.organizationId, displayName: body.displayName)
            }
            return .created(UserBody(user), id: user.id, location: "/api/users/\(user.id)")
        },
        RouteSpec(method: "PATCH", pattern: "/api/users/{id}", access: .admin, audit: "user.update") { s, req, p, c throws(Problem) in
            struct Body: Decodable { var disabled: Bool?; var role: String? }
            let body: Body = try decodeJSON(req)
            let user = try sameOrganization(s, p["id"], c.user)
            if let roleName = body.role {
                guard let role = Role(rawValue: roleName) else { throw Problem.badRequest("`role` must be admin or clinician") }
                try Guard.accountsCall(s) { try $0.setRole(username: user.username, role) }
            }
            if let disabled = body.disabled {
                guard !(disabled && user.id == c.user.id) else { throw Problem(status: 409, detail: "you cannot disable yourself") }
                try Guard.accountsCall(s) { try $0.setDisabled(username: user.username, disabled) }
            }
            return .json(UserBody(try sameOrganization(s, p["id"], c.user)))
        },
        RouteSpec(method: "POST", pattern: "/api/users/{id}/password", access: .admin, audit: "user.password") { s, req, p, c throws(Problem) in
            struct Body: Decodable { var password: String }
            let body: Body = try decodeJSON(req)
            let user = try sameOrganization(s, p["id"], c.user)
            try Guard.accountsCall(s) { try $0.setPassword(username: user.username, password: body.password) }
            return .noContent
        },
        // Another user's tokens (same organisation): listed without secrets, revoked one by one.
        RouteSpec(method: "GET", pattern: "/api/users/{id}/tokens", access: .admin, audit: "token.list") { s, _, p, c throws(Problem) in
            let user = try sameOrganization(s, p["id"], c.user)
            return .json(["tokens": try Guard.accountsCall(s) { try $0.tokens(userId: user.id) }], headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "DELETE", pattern: "/api/users/{userId}/tokens/{id}", access: .admin, audit: "token.revoke") { s, _, p, c throws(Problem) in
            let user = try sameOrganization(s, p["userId"], c.user)
            guard try Guard.accountsCall(s, { try $0.revokeToken(id: p["id"], userId: user.id) }) else {
                throw Problem.notFound("no token \(p["id"].prefix(40))")
            }
            return .noContent
        },
        RouteSpec(method: "GET", pattern: "/api/audit", access: .admin, audit: nil) { s, req, _, c throws(Problem) in
            let entries = try auditEntries(s, req, c.user)
            let full = entries.count == (Int(req.query["limit"] ?? "") ?? 100)
            let newest = req.query["order"] == "newest"
            return .json(AuditPage(entries: entries, nextAfter: full && !newest ? entries.last?.id : nil,
                                   nextBefore: full && newest ? entries.last?.id : nil),
                         headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "GET", pattern: "/api/audit/export", access: .admin, audit: nil) { s, req, _, c throws(Problem) in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            var lines = ""
            for entry in try auditEntries(s, req, c.user, defaultLimit: 1000) {
                if let data = try? encoder.encode(entry) { lines += String(decoding: data, as: UTF8.self) + "\n" }
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/x-ndjson"), ("Cache-Control", "no-store"),
                                                       ("Content-Disposition", "attachment; filename=\"mediscope-audit.jsonl\"")],
                                body: Array(lines.utf8))
        },
    ]

    struct UserBody: Encodable {
        var id: String, username: String, displayName: String?, role: String, organizationId: String, disabled: Bool, createdAt: Date
        init(_ u: User) {
            id = u.id; username = u.username; displayName = u.displayName; role = u.role.rawValue
            organizationId = u.organizationId; disabled = u.disabled; createdAt = u.createdAt
        }
    }
    struct MeBody: Encodable { var user: UserBody; var authentication: String }
    /// Oldest first pages on with `after=nextAfter`; `order=newest` pages on with `before=nextBefore`.
    struct AuditPage: Encodable { var entries: [AuditEntry]; var nextAfter: Int64?; var nextBefore: Int64? }

    static func signIn(_ s: Services, _ req: HTTPRequest) throws(Problem) -> HTTPResponse {
        // A sign-in form posted from another site must not log the browser into our account (login CSRF).
        if let origin = req.header("origin"), origin != Guard.expectedOrigin(req) {
            throw Problem(status: 403, detail: "cross-site sign-in refused (Origin does not match)")
        }
        struct Body: Decodable { var username: String; var password: String }
        let body: Body = try decodeJSON(req)
        let username = body.username.trimmingCharacters(in: .whitespaces).lowercased()
        let accounts = try s.accounts()
        func audit(_ user: User?, _ outcome: String) throws(Problem) {
            let entry = AuditEntry(actorUserId: user?.id, actorUsername: String(username.prefix(64)),
                                   organizationId: user?.organizationId, action: "session.create", recordId: nil,
                                   address: req.remoteAddress, outcome: outcome)
            try Guard.accountsCall(s) { try $0.audit(entry) }
        }
        if let wait = try Guard.accountsCall(s, { try $0.signInRetryAfter(username: username, address: req.remoteAddress) }) {
            // Under the account's organisation, so its admins see who is being guessed at.
            try audit(try? accounts.user(username: username) ?? nil, "throttled")
            throw Problem(status: 429, detail: "too many failed sign-ins; try again later", retryAfter: wait)
        }
        // An over-long password is refused (422) before the user is looked up: the same for every username.
        guard let user = try Guard.accountsCall(s, { try $0.verifyPassword(username: username, password: body.password) }) else {
            try Guard.accountsCall(s) { try $0.recordSignInFailure(username: username, address: req.remoteAddress) }
            try audit(try? accounts.user(username: username) ?? nil, "failure")
            // The same answer for an unknown user and a wrong password.
            throw Problem(status: 401, detail: "wrong username or password")
        }
        try Guard.accountsCall(s) { try $0.recordSignInSuccess(username: username, address: req.remoteAddress) }
        let (token, csrf, _) = try Guard.accountsCall(s) { try $0.createSession(userId: user.id) }
        try audit(user, "success")
        let cookies = Cookies.names(s, req)
        struct Body2: Encodable { var user: UserBody; var csrfToken: String }
        // Browser-session cookies (no Max-Age): the server ends the session after its idle or absolute limit.
        return .json(Body2(user: UserBody(user), csrfToken: csrf), status: 201, headers: [
            Cookies.set(cookies.session, token, httpOnly: true, secure: cookies.secure),
            // Readable by the dashboard's script, which echoes it in X-CSRF-Token (double submit, checked against the session).
            Cookies.set(cookies.csrf, csrf, httpOnly: false, secure: cookies.secure),
            ("Cache-Control", "no-store"),
        ])
    }

    static func signOut(_ s: Services, _ req: HTTPRequest, _ caller: Caller) throws(Problem) -> HTTPResponse {
        if case .session(let token, _) = caller.method {
            try Guard.accountsCall(s) { try $0.deleteSession(token: token) }
        }
        let entry = AuditEntry(actorUserId: caller.user.id, actorUsername: caller.user.username,
                               organizationId: caller.user.organizationId, action: "session.delete", recordId: nil,
                               address: req.remoteAddress, outcome: "success")
        try Guard.accountsCall(s) { try $0.audit(entry) }
        let cookies = Cookies.names(s, req)
        return HTTPResponse(status: 204, headers: [
            Cookies.expire(cookies.session, httpOnly: true, secure: cookies.secure),
            Cookies.expire(cookies.csrf, httpOnly: false, secure: cookies.secure),
        ])
    }

    static func sameOrganization(_ s: Services, _ id: String, _ admin: User) throws(Problem) -> User {
        guard let user = try Guard.accountsCall(s, { try $0.user(id: id) }), user.organizationId == admin.organizationId else {
            throw Problem.notFound("no user \(id.prefix(40))")
        }
        return user
    }

    static func auditEntries(_ s: Services, _ req: HTTPRequest, _ admin: User, defaultLimit: Int = 100) throws(Problem) -> [AuditEntry] {
        var filter = AuditFilter()
        filter.organizationId = admin.organizationId
        filter.actorUserId = req.query["actor"]
        filter.action = req.query["action"]
        filter.recordId = req.query["record"]
        filter.outcome = req.query["outcome"]
        let iso = ISO8601DateFormatter()
        if let since = req.query["since"] {
            guard let d = iso.date(from: since) else { throw Problem.badRequest("`since` must be an ISO 8601 time") }
            filter.since = d
        }
        if let until = req.query["until"] {
            guard let d = iso.date(from: until) else { throw Problem.badRequest("`until` must be an ISO 8601 time") }
            filter.until = d
        }
        filter.limit = defaultLimit
        if let limit = req.query["limit"] {
            guard let n = Int(limit), (1...1000).contains(n) else { throw Problem.badRequest("`limit` must be 1 to 1000") }
            filter.limit = n
        }
        if let after = req.query["after"] {
            guard let n = Int64(after) else { throw Problem.badRequest("`after` must be an entry id") }
            filter.afterId = n
        }
        if let before = req.query["before"] {
            guard let n = Int64(before) else { throw Problem.badRequest("`before` must be an entry id") }
            filter.beforeId = n
        }
        switch req.query["order"] {
        case nil, "oldest": break
        case "newest": filter.newestFirst = true
        default: throw Problem.badRequest("`order` must be oldest or newest")
        }
        return try Guard.accountsCall(s) { try $0.auditEntries(filter) }
    }

    static func decodeJSON<T: Decodable>(_ req: HTTPRequest) throws(Problem) -> T {
        guard let type = req.header("content-type"), type.lowercased().hasPrefix("application/json") else {
            throw Problem(status: 415, detail: "send a JSON body (Content-Type: application/json)")
        }
        // Well-formed, no key twice in an object, bounded depth: the decoder would keep one of two values silently.
        try StrictJSON.check(req.body)
        do { return try JSONDecoder().decode(T.self, from: Data(req.body)) } catch {
            throw Problem.badRequest("the JSON body is not valid for this request")
        }
    }
}
