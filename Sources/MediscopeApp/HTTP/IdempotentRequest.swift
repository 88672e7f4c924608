import Foundation
import MediscopeAuth
import MediscopeIdempotency
import MediscopeServer
import MediscopeStore

/// A request sent with an Idempotency-Key header (IETF httpapi draft; POST /api/analyses and the report's
/// edit, sign and amend): the same key from the same user with the same request gets the first one's
/// answer, never a second record or version; the same key with another request is a 422; one still
/// running under the key a 409. `begin` claims the key, the route does its work, then `complete` (what it
/// made) or `release` (it failed: a retry runs anew). Only a success is remembered.
struct IdempotentRequest {
    /// The request header.
    static let header = "idempotency-key"
    /// Sent with an answer that repeats the first one (as Stripe and others name it).
    static let replayedHeader = "Idempotent-Replayed"

    let key: IdempotencyKey
    let scope: String
    let fingerprint: String
    let claim: IdempotencyClaim
    private let store: IdempotencyKeyStore
    private let log: ServerLog

    /// Claims the request's key for this process; nil when it sends none. 400 for a malformed key, 503
    /// when the key store cannot be written (the request is not run unclaimed).
    static func begin(_ s: Services, _ req: HTTPRequest, _ user: User, fingerprint: RequestFingerprint) throws(Problem) -> IdempotentRequest? {
        guard let value = req.header(header) else { return nil }
        let key: IdempotencyKey
        do { key = try IdempotencyKey(header: value) } catch { throw Problem.badRequest(error.reason) }
        let store = try s.idempotencyKeys()
        let scope = key.scope(organizationId: user.organizationId, userId: user.id, method: req.method, path: req.path)
        let claim: IdempotencyClaim
        do { claim = try store.claim(scope: scope, fingerprint: fingerprint.hex) } catch { throw s.problem(error) }
        return IdempotentRequest(key: key, scope: scope, fingerprint: fingerprint.hex, claim: claim, store: store, log: s.server.log)
    }

    /// The problem for a claim that must not run (`running`, `mismatch`); nil for the others.
    var refusal: Problem? {
        switch claim {
        case .running:
            Problem(status: 409, detail: "a request with this Idempotency-Key is still being processed; send it again in a moment "
                    + "for its answer", retryAfter: 1)
        case .mismatch:
            Self.mismatch
        case .new, .takenOver, .done:
            nil
        }
    }

    /// The answer to the same key with another request.
    static let mismatch = Problem(status: 422, detail: "this Idempotency-Key was used for a different request; "
                                  + "use a new key for a new request")

    /// Remembers what the request made. A failure is logged, not thrown (the work is done), and the key
    /// released: a retry then finds what was made (an analysis by its derived id, a report version by its
    /// text) instead of waiting for a claim nobody will complete.
    func complete(_ result: String) {
        do { try store.complete(scope: scope, result: result) } catch {
            log.error("idempotency_key_not_completed", ["error": .token(.init(error.kind.rawValue))])
            release()
        }
    }

    /// Forgets the key (the request failed); a retry runs anew.
    func release() {
        do { try store.release(scope: scope) } catch {
            log.error("idempotency_key_not_released", ["error": .token(.init(error.kind.rawValue))])
        }
    }

    /// `response` marked as the repeat of the first answer.
    static func replayed(_ response: HTTPResponse) -> HTTPResponse {
        var response = response
        response.headers.append((replayedHeader, "true"))
        return response
    }
}
