import Crypto
import Foundation
import Testing
@testable import FirebaseTestKit
import _CryptoExtras
@testable import MediscopeAuth

// Forged tokens: a changed payload, an unknown key, algorithm confusion, malformed text.
extension FirebaseTokenVerifierTests {
    // MARK: - Signature and key

    @Test func payloadChangedAfterSigningFailsSignature() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        let token = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        let parts = token.split(separator: ".").map(String.init)
        let escalated = F.base64URL(F.json(F.claims(now: h.clock.now, overrides: ["mediscope_role": "admin"])))
        #expect(escalated != parts[1])
        Self.expect([parts[0], escalated, parts[2]].joined(separator: "."), on: h.verifier, throws: .badSignature)
        // Signature from a different private key under the published kid.
        Self.expect(F.token(key: F.impostorA, claims: F.claims(now: h.clock.now)), on: h.verifier, throws: .badSignature)
        // A truncated signature (valid base64url, 253 of 256 bytes).
        let raw = try F.keyA.privateKey.signature(for: SHA256.hash(data: Array((parts[0] + "." + parts[1]).utf8)),
                                                  padding: .insecurePKCS1v1_5).rawRepresentation
        #expect(F.base64URL(raw) == parts[2])
        Self.expect(parts[0] + "." + parts[1] + "." + F.base64URL(raw.dropLast(3)), on: h.verifier, throws: .badSignature)
        // The untampered token still verifies (the harness is not simply rejecting everything).
        #expect(try h.verifier.verify(token).role == "clinician")
    }

    @Test func unknownKidIsRejected() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        Self.expect(F.token(key: F.keyB, claims: F.claims(now: h.clock.now)), on: h.verifier, throws: .unknownKey)
        Self.expect(F.token(key: F.keyA, kid: "no-such-kid", claims: F.claims(now: h.clock.now)), on: h.verifier, throws: .unknownKey)
        // The first verification fetched, the first unknown kid refetched once, the second was rate limited.
        #expect(h.server.requestCount == 2)
    }

    // MARK: - Algorithm confusion

    @Test func algNoneIsRejected() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        let header = F.base64URL(F.json(["alg": "none", "kid": F.keyA.kid, "typ": "JWT"]))
        let payload = F.base64URL(F.json(F.claims(now: h.clock.now)))
        Self.expect(header + "." + payload + ".", on: h.verifier, throws: .unsupportedAlgorithm)
        Self.expect(header + "." + payload + ".c2lnbmF0dXJl", on: h.verifier, throws: .unsupportedAlgorithm)
        let noneUpper = F.base64URL(F.json(["alg": "None", "kid": F.keyA.kid]))
        Self.expect(noneUpper + "." + payload + ".", on: h.verifier, throws: .unsupportedAlgorithm)
        // Nothing was fetched: the algorithm is refused before any key lookup.
        #expect(h.server.requestCount == 0)
    }

    @Test func hs256WithPublicKeyAsSecretIsRejected() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        let payload = F.base64URL(F.json(F.claims(now: h.clock.now)))
        let header = F.base64URL(F.json(["alg": "HS256", "kid": F.keyA.kid, "typ": "JWT"]))
        let signingInput = Array((header + "." + payload).utf8)
        // The classic confusion attack: HMAC keyed with the (public) certificate or public-key PEM.
        for secret in [F.keyA.certificatePEM, F.keyA.privateKey.publicKey.pemRepresentation] {
            let mac = HMAC<SHA256>.authenticationCode(for: signingInput, using: SymmetricKey(data: Array(secret.utf8)))
            let forged = header + "." + payload + "." + F.base64URL(Data(mac))
            Self.expect(forged, on: h.verifier, throws: .unsupportedAlgorithm)
        }
    }

    @Test func otherAlgorithmsAreRejected() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        for alg: Any in ["RS512", "rs256", "PS256", "ES256", "RS256 ", 256] {
            // Really RS256-signed: only the header's claim differs.
            let token = F.token(header: ["alg": alg, "kid": F.keyA.kid], claims: F.claims(now: h.clock.now), key: F.keyA)
            Self.expect(token, on: h.verifier, throws: .unsupportedAlgorithm)
        }
        let noAlg = F.token(header: ["kid": F.keyA.kid], claims: F.claims(now: h.clock.now), key: F.keyA)
        Self.expect(noAlg, on: h.verifier, throws: .unsupportedAlgorithm)
        let noKid = F.token(header: ["alg": "RS256"], claims: F.claims(now: h.clock.now), key: F.keyA)
        Self.expect(noKid, on: h.verifier, throws: .malformed)
        let crit = F.token(header: ["alg": "RS256", "kid": F.keyA.kid, "crit": ["b64"], "b64": false],
                           claims: F.claims(now: h.clock.now), key: F.keyA)
        Self.expect(crit, on: h.verifier, throws: .malformed)
    }

    // MARK: - Malformed tokens

    @Test func malformedTokensAreRejected() throws {
        let h = try Self.harness()
        defer { h.server.stop() }
        let good = F.token(key: F.keyA, claims: F.claims(now: h.clock.now))
        let p = good.split(separator: ".").map(String.init)
        #expect(try h.verifier.verify(good).uid == "uid-0123456789")
        let oversize = F.token(key: F.keyA, claims: F.claims(now: h.clock.now, overrides: ["pad": String(repeating: "x", count: 8192)]))
        let cases: [String] = [
            "",
            "..",
            p[0] + "." + p[1],                                   // 2 segments
            p[0] + "." + p[1] + "." + p[2] + "." + p[2],         // 4 segments
            p[0] + "." + p[1] + "." + p[2] + ".",                // trailing dot
            "!!!." + p[1] + "." + p[2],                          // not base64url
            p[0] + "=." + p[1] + "." + p[2],                     // padding
            p[0] + "." + p[1] + "." + p[2] + "==",
            p[0] + "." + p[1] + " ." + p[2],                     // whitespace
            p[0].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+/." + p[1] + "." + p[2], // standard alphabet
            p[0] + "." + p[1] + "A." + p[2],                     // 4n+1 characters
            F.base64URL(Array("not json".utf8)) + "." + p[1] + "." + p[2],
            p[0] + "." + F.base64URL(Array("[1,2,3]".utf8)) + "." + p[2],
            oversize,
        ]
        for token in cases { Self.expect(token, on: h.verifier, throws: .malformed) }
        #expect(oversize.utf8.count > FirebaseTokenVerifier.maxTokenBytes)
    }
}
