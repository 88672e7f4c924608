import Foundation
import MediscopeAuth
import MediscopeServer

/// One route: pattern, who may call it, what the audit log calls it, and its handler.
///
/// Routes that need a signed-in user are made with `access:` and their handler gets the `Caller` that
/// Guard authenticated; open routes (`open:` `.everyone` or `.operatorOrAdmin`) get it when there is one.
struct RouteSpec: Sendable {
    typealias Handler = @Sendable (Services, HTTPRequest, PathParameters, Caller?) throws(Problem) -> HTTPResponse
    typealias SignedInHandler = @Sendable (Services, HTTPRequest, PathParameters, Caller) throws(Problem) -> HTTPResponse
    let method: String
    let pattern: String
    let access: Access
    /// Audit action for every call (patient data and account changes); nil for routes not audited here.
    private(set) var audit: String?
    /// Whether Guard writes the entry of a successful call too; false for a route whose handler audits
    /// the successes worth a trace itself (the report poll: only a report with text). Refusals and
    /// failures are always Guard's.
    private(set) var auditsSuccesses = true
    let handler: Handler

    /// A route for signed-in users (`.signedIn`, `.clinical`, `.admin`).
    init(method: String, pattern: String, access: Access, audit: String?, handler: @escaping SignedInHandler) {
        precondition(access.needsCaller, "\(pattern): \(access) routes are made with `open:`")
        self.method = method; self.pattern = pattern; self.access = access; self.audit = audit
        self.handler = { s, req, p, caller throws(Problem) in
            // Guard.authorize has refused a missing caller already; this keeps the handler's type honest.
            guard let caller else { throw Guard.unauthorized("sign in first") }
            return try handler(s, req, p, caller)
        }
    }

    /// A route anyone may call (`.everyone`) or loopback operators and admins (`.operatorOrAdmin`).
    init(method: String, pattern: String, open access: Access, audit: String?, handler: @escaping Handler) {
        precondition(!access.needsCaller, "\(pattern): \(access) routes are made with `access:`")
        self.method = method; self.pattern = pattern; self.access = access; self.audit = audit; self.handler = handler
    }
}
extension RouteSpec {
    /// Whether a call may change something (every method but GET, HEAD and OPTIONS): its audit intent
    /// is written before the handler runs.
    var changesData: Bool { !["GET", "HEAD", "OPTIONS"].contains(method) }

    /// This route with its successes audited by its handler (see `auditsSuccesses`).
    func auditingSuccessesInHandler() -> RouteSpec {
        var spec = self
        spec.auditsSuccesses = false
        return spec
    }

    /// This route audited as `action` (a route table may add what a module's own table left out).
    func audited(as action: String) -> RouteSpec {
        var spec = self
        spec.audit = action
        return spec
    }
}
