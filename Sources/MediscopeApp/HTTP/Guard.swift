import Foundation
import MediscopeAuth
import MediscopeServer

enum Guard {
    /// Authenticates, checks access and CSRF, writes the audit intent of a change, runs the handler and
    /// writes the audit entry of its outcome.
    static func run(_ s: Services, _ spec: RouteSpec, _ req: HTTPRequest, _ p: PathParameters) -> HTTPResponse {
        var caller: Caller?
        var response: HTTPResponse
        var sessionEnded = false
        var intentRecorded = false
        s.server.log.noteRoute(method: spec.method, pattern: spec.pattern)   // for the slow-request log
        do {
            caller = try authenticate(s, req, open: !spec.access.needsCaller, sessionEnded: &sessionEnded)
            try authorize(spec.access, caller, req)
            if let caller, caller.usesCookie, !["GET", "HEAD", "OPTIONS"].contains(req.method) {
                try checkCSRF(s, caller, req)
            }
            intentRecorded = try recordIntent(s, spec, req, p, caller)
            response = try spec.handler(s, req, p, caller)
        } catch {
            response = error.response
        }
        response = Cookies.expiringStale(response, s, req, sessionEnded: sessionEnded)
        return recordOutcome(s, spec, req, p, caller, response, afterIntent: intentRecorded)
    }

    /// The outcome of an entry written before a change runs (the change's own entry follows it).
    static let started = "started"

    /// Before a route that may change something runs: its intent (`started`, with the record the path
    /// names), so that no change is ever made without a trace. The stores of records and of the audit
    /// log are separate (analyses.sqlite and accounts.sqlite, or Firestore through the outbox), so they
    /// cannot commit together; this order makes a change that has no entry impossible. Returns whether an
    /// intent was written; throws 503 when it cannot be, and the handler never runs.
    static func recordIntent(_ s: Services, _ spec: RouteSpec, _ req: HTTPRequest, _ p: PathParameters,
                             _ caller: Caller?) throws(Problem) -> Bool {
        guard let action = spec.audit, spec.changesData else { return false }
        try audit(s, req, caller, action: action, recordId: p.values["id"], outcome: started)
        return true
    }

    /// After the handler: the entry of the route's outcome (for a route whose handler audits its own
    /// successes, only of a refusal or failure), and for a refusal (401, 403, 404) of a record another
    /// organisation owns, the same entry in that organisation's trail as well (outcome `denied`), so the
    /// owner's admin sees who tried. No trace, no data: when an entry cannot be written the answer is a
    /// 503, except after a recorded intent: the change is made (or refused) and its intent is in the log;
    /// a 503 would only invite the client to repeat it.
    static func recordOutcome(_ s: Services, _ spec: RouteSpec, _ req: HTTPRequest, _ p: PathParameters, _ caller: Caller?,
                              _ response: HTTPResponse, afterIntent: Bool) -> HTTPResponse {
        guard let action = spec.audit, spec.auditsSuccesses || !(200..<300).contains(response.status) else { return response }
        let recordId = p.values["id"] ?? response.createdID
        // A repeat of a first answer under an Idempotency-Key changed nothing: `replayed`, not another success.
        let replayed = response.headers.contains { $0.0 == IdempotentRequest.replayedHeader }
        do {
            try audit(s, req, caller, action: action, recordId: recordId,
                      outcome: replayed ? "replayed" : outcome(response.status))
            if [401, 403, 404].contains(response.status), let recordId, let owner = ownerOrganization(s, spec, recordId),
               owner != caller?.user.organizationId {
                try audit(s, req, caller, organizationId: owner, action: action, recordId: recordId, outcome: "denied")
            }
        } catch {
            return afterIntent ? response : error.response
        }
        return response
    }

    /// The organisation owning the record a route's path names (an analysis, for its own routes and its
    /// report's; a user, for the user routes); nil when the route names none, there is none, or it cannot
    /// be read now (the caller's own entry stands).
    static func ownerOrganization(_ s: Services, _ spec: RouteSpec, _ id: String) -> String? {
        if spec.pattern.hasPrefix(APILinks.analysisPattern) || spec.pattern == APILinks.reportPattern {
            guard API.validID(id), let store = try? s.store() else { return nil }
            return try? store.owner(id: id)
        }
        if spec.pattern.hasPrefix("/api/users/{id}"), let accounts = try? s.accounts() {
            return try? accounts.user(id: id)?.organizationId
        }
        return nil
    }

    /// Writes one audit entry for `caller`'s request, its outcome from the response's status.
    static func audit(_ s: Services, _ req: HTTPRequest, _ caller: Caller?, action: String, recordId: String?,
                      status: Int) throws(Problem) {
        try audit(s, req, caller, action: action, recordId: recordId, outcome: outcome(status))
    }

    /// Writes one audit entry for `caller`'s request, filed under `organizationId` (default: the caller's).
    /// No trace, no data: a request whose audit entry cannot be written is refused (503).
    static func audit(_ s: Services, _ req: HTTPRequest, _ caller: Caller?, organizationId: String? = nil, action: String,
                      recordId: String?, outcome: String) throws(Problem) {
        let entry = AuditEntry(actorUserId: caller?.user.id, actorUsername: caller?.user.username,
                               organizationId: organizationId ?? caller?.user.organizationId, action: action, recordId: recordId,
                               address: req.remoteAddress, outcome: outcome)
        do { try s.accounts().audit(entry) } catch {
            s.server.log.error("audit_write_failed", ["action": .token(.init(action))])
            throw Problem(status: 503, detail: "the audit log is unavailable", retryAfter: 5)
        }
    }

    static func outcome(_ status: Int) -> String {
        switch status {
        case 200..<300: "success"
        case 401, 403: "denied"
        case 404: "not_found"
        case 429: "throttled"
        default: "failure"
        }
    }

    /// The caller the request's credentials prove, nil when it sends none. A session cookie whose session
    /// has ended (idle or absolute expiry, sign-out, password reset, disabling) sets `sessionEnded`; an
    /// `open` route then goes on as if no cookie had been sent (so signing in again or /api/health works),
    /// any other answers 401. Either way `run` expires the cookies.
    static func authenticate(_ s: Services, _ req: HTTPRequest, open: Bool, sessionEnded: inout Bool) throws(Problem) -> Caller? {
        if let authorization = req.header("authorization") {
            guard authorization.lowercased().hasPrefix("bearer ") else {
                throw unauthorized("only Bearer authorization is accepted")
            }
            let credential = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            if credential.hasPrefix("msk_") {
                guard let (token, user) = try accountsCall(s, { try $0.user(forToken: credential) }) else {
                    throw unauthorized("the API token is not valid")
                }
                return Caller(user: user, method: .token(token))
            }
            return try firebaseCaller(s, credential)
        }
        if let token = Cookies.parse(req.header("cookie"))[Cookies.names(s, req).session] {
            guard let (session, user) = try accountsCall(s, { try $0.session(token: token) }) else {
                sessionEnded = true
                if open { return nil }
                throw unauthorized("the session has ended; sign in again")
            }
            return Caller(user: user, method: .session(token: token, session))
        }
        return nil
    }

    static func authorize(_ access: Access, _ caller: Caller?, _ req: HTTPRequest) throws(Problem) {
        switch access {
        case .everyone:
            return
        case .operatorOrAdmin:
            if req.isLoopback || caller?.user.role == .admin { return }
            if caller == nil { throw unauthorized("sign in as an admin") }
            throw Problem(status: 403, detail: "status and metrics are for admins and loopback clients")
        case .signedIn, .clinical, .admin:
            guard let caller else { throw unauthorized("sign in first") }
            if access == .clinical && caller.user.role != .clinician {
                throw Problem(status: 403, detail: "patient data is for clinicians")
            }
            if access == .admin && caller.user.role != .admin {
                throw Problem(status: 403, detail: "this needs the admin role")
            }
        }
    }

    /// Cookie-authenticated unsafe requests need our own Origin and the session's CSRF token.
    static func checkCSRF(_ s: Services, _ caller: Caller, _ req: HTTPRequest) throws(Problem) {
        guard case .session(_, let session) = caller.method else { return }
        guard let origin = req.header("origin"), origin == expectedOrigin(req) else {
            throw Problem(status: 403, detail: "cross-site request refused (Origin does not match)")
        }
        guard let token = req.header("x-csrf-token"), try accountsCall(s, { $0.verifyCSRF(session: session, token: token) }) else {
            throw Problem(status: 403, detail: "missing or wrong CSRF token (send X-CSRF-Token)")
        }
    }

    static func expectedOrigin(_ req: HTTPRequest) -> String? { req.ownOrigin }

    static func unauthorized(_ detail: String) -> Problem {
        Problem(status: 401, detail: detail)
    }

    static func firebaseCaller(_ s: Services, _ jwt: String) throws(Problem) -> Caller {
        guard let firebase = s.firebase else { throw unauthorized("the bearer token is not valid") }
        let claims: FirebaseClaims
        do { claims = try firebase.verify(jwt) } catch {
            if case .certificatesUnavailable = error {
                throw Problem(status: 503, detail: "Google's token certificates cannot be fetched", retryAfter: 10)
            }
            throw unauthorized("the Firebase ID token is not valid")
        }
        let user = try accountsCall(s) { accounts throws -> User? in
            if let linked = try accounts.user(firebaseUID: claims.uid) { return linked }
            // Not linked yet: custom claims may place the user; otherwise an admin must add them.
            guard let roleName = claims.role, let role = Role(rawValue: roleName), let org = claims.organization else { return nil }
            let username = "firebase-" + String(claims.uid.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(48))
            // A Firebase user never signs in with a password here; this one is random and thrown away.
            let user = try accounts.addUser(username: username, password: Tokens.random(bytes: 32), role: role,
                                            organizationId: org, displayName: claims.verifiedEmail)
            try accounts.linkFirebase(uid: claims.uid, userId: user.id)
            return try accounts.user(id: user.id)
        }
        guard let user, !user.disabled else { throw Problem(status: 403, detail: "this Firebase account has no Mediscope access") }
        return Caller(user: user, method: .firebase(uid: claims.uid))
    }

    /// Runs an account call, its failures converted once (Problems.swift).
    @discardableResult
    static func accountsCall<T>(_ s: Services, _ body: (Accounts) throws -> T) throws(Problem) -> T {
        let accounts = try s.accounts()
        do { return try body(accounts) } catch { throw s.problem(error) }
    }
}
