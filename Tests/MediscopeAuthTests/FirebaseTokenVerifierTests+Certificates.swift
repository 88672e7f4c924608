import Foundation
import Testing
@testable import FirebaseTestKit
@testable import MediscopeAuth

// The certificates endpoint (fetch failures, key rotation, caching) and the errors' messages.
extension FirebaseTokenVerifierTests {
    // MARK: - Certificates endpoint

    @Test func serverDownMeansCertificatesUnavailable() throws {
        let h = try Self.harness()
        h.server.stop() // port now refuses connections
        let token = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        do throws(FirebaseTokenError) {
            _ = try h.verifier.verify(token)
            Issue.record("verification succeeded without certificates")
        } catch {
            guard case .certificatesUnavailable(let reason) = error else {
                Issue.record("expected certificatesUnavailable, got \(error)"); return
            }
            #expect(!reason.isEmpty)
            #expect(error.httpStatus == 503)
            #expect(!error.message.contains(token))
        }
        #expect(FirebaseTokenError.badSignature.httpStatus == 401)
    }

    @Test func serverErrorOrGarbageMeansCertificatesUnavailable() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        let token = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        h.server.setResponse(.init(status: 500, headers: [], body: Array("oops".utf8)))
        Self.expect(token, on: h.verifier, throws: .certificatesUnavailable("HTTP 500"))
        // Within the failure back-off no new request is made.
        Self.expect(token, on: h.verifier, throws: .certificatesUnavailable("HTTP 500"))
        #expect(h.server.requestCount == 1)
        h.clock.advance(FirebaseTokenVerifier.failureBackoff + 1)
        h.server.setResponse(.init(status: 200, headers: [], body: Array(#"{"kid-a-0001":"not a certificate"}"#.utf8)))
        do throws(FirebaseTokenError) {
            _ = try h.verifier.verify(token)
            Issue.record("verified against garbage certificates")
        } catch {
            guard case .certificatesUnavailable = error else { Issue.record("unexpected \(error)"); return }
        }
        #expect(h.server.requestCount == 2)
        // Once the server recovers (after the back-off) the token verifies.
        h.clock.advance(FirebaseTokenVerifier.failureBackoff + 1)
        h.server.setResponse(F.certificatesResponse([F.keyA]))
        #expect(try h.verifier.verify(token).uid == "uid-0123456789")
        #expect(h.server.requestCount == 3)
    }

    @Test func rotatedKeyVerifiesAfterExactlyOneRefetch() throws {
        let h = try Self.harness(keys: [F.keyA])
        defer { h.server.stop() }
        let tokenA = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        _ = try h.verifier.verify(tokenA)
        #expect(h.server.requestCount == 1)

        // Google rotates: the endpoint now also publishes keyB.
        h.server.setResponse(F.certificatesResponse([F.keyA, F.keyB]))
        let tokenB = F.token(key: F.keyB, claims: F.claims(now: h.clock.now))
        // The new kid is unknown to the cache: exactly one refetch, even right after the routine fetch.
        let claims = try h.verifier.verify(tokenB)
        #expect(claims.uid == "uid-0123456789")
        #expect(h.server.requestCount == 2)
        // Cached now: neither token fetches again.
        _ = try h.verifier.verify(tokenB)
        _ = try h.verifier.verify(tokenA)
        #expect(h.server.requestCount == 2)
        // A still-unknown kid right after that refetch is rate limited...
        let tokenC = F.token(key: F.keyA, kid: "kid-c-0003", claims: F.claims(now: h.clock.now))
        Self.expect(tokenC, on: h.verifier, throws: .unknownKey)
        #expect(h.server.requestCount == 2)
        // ...until the interval has passed.
        h.clock.advance(FirebaseTokenVerifier.unknownKeyRefetchInterval + 1)
        Self.expect(F.token(key: F.keyA, kid: "kid-c-0003", claims: F.claims(now: h.clock.now)), on: h.verifier, throws: .unknownKey)
        #expect(h.server.requestCount == 3)
    }

    @Test func cacheControlMaxAgeIsHonoured() throws {
        let h = try Self.harness(cacheControl: "public, max-age=600, must-revalidate, no-transform")
        defer { h.server.stop() }
        let token = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        _ = try h.verifier.verify(token)
        #expect(h.server.requestCount == 1)
        h.clock.advance(599)
        _ = try h.verifier.verify(token)
        #expect(h.server.requestCount == 1)
        h.clock.advance(2) // 601 s after the fetch: stale
        _ = try h.verifier.verify(token)
        #expect(h.server.requestCount == 2)
        // Removed keys disappear with the refresh: keyA dropped from the endpoint is no longer accepted.
        h.server.setResponse(F.certificatesResponse([F.keyB]))
        h.clock.advance(601)
        Self.expect(token, on: h.verifier, throws: .unknownKey)
        #expect(h.server.requestCount == 3)
    }

    @Test func defaultCacheLifetimeIsOneHourWithoutCacheControl() throws {
        let counter = FirebaseFetchCounter()
        let clock = FirebaseTestClock()
        let body = F.certificatesJSON([F.keyA])
        let verifier = FirebaseTokenVerifier(projectId: F.projectId, certificatesURL: URL(string: "http://unused.invalid/")!,
                                             now: { clock.now }, fetch: { _ in counter.increment(); return (200, body, nil) })
        let token = F.token(key: F.keyA, claims: F.claims(now: clock.now, overrides: ["exp": Int(clock.now.timeIntervalSince1970 + 7200)]))
        _ = try verifier.verify(token)
        clock.advance(3599)
        _ = try verifier.verify(token)
        #expect(counter.count == 1)
        clock.advance(2)
        _ = try verifier.verify(token)
        #expect(counter.count == 2)
    }

    @Test func cacheLifetimeParsing() {
        let f = FirebaseTokenVerifier.cacheLifetime(cacheControl:)
        #expect(f(nil) == 3600)
        #expect(f("public, max-age=19204, must-revalidate, no-transform") == 19204)
        #expect(f("Max-Age = 120") == 120)
        #expect(f("no-cache") == 3600)
        #expect(f("max-age=abc") == 3600)
        #expect(f("max-age=0") == 60)          // floor
        #expect(f("max-age=99999999") == 86_400) // ceiling
    }

    @Test func errorMessagesAreShortAndDistinct() {
        let all: [FirebaseTokenError] = [.malformed, .unsupportedAlgorithm, .unknownKey, .badSignature, .expired,
                                         .issuedInFuture, .wrongAudience, .wrongIssuer, .missingSubject,
                                         .certificatesUnavailable("HTTP 500")]
        #expect(Set(all.map(\.message)).count == all.count)
        for e in all { #expect(e.message.count < 80) }
        #expect(all.filter { $0.httpStatus == 503 } == [.certificatesUnavailable("HTTP 500")])
    }
}
