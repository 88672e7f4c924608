import Crypto
import Foundation
import Testing
@testable import FirebaseTestKit

/// Firebase ID tokens as Bearer credentials through real nginx and the pool; Google's certificate
/// endpoint is a local server serving certificates this test generated.
@Suite(.serialized) final class FirebaseSignInTests {
    let certificates: FirebaseTestHTTPServer
    let stack: Stack

    init() async throws {
        certificates = try FirebaseTestHTTPServer(FirebaseFixtures.certificatesResponse([FirebaseFixtures.keyA]))
        stack = try await Stack.start(settings: ["FIREBASE_PROJECT_ID": FirebaseFixtures.projectId,
                                     "FIREBASE_CERTIFICATES_URL": certificates.url.absoluteString,
                                     "POOLS_IO_WORKERS": "1"])
    }
    deinit {
        stack.stop()
        certificates.stop()
    }

    func me(_ token: String) async throws -> Stack.Response {
        try await stack.request("GET", "/api/me", auth: .bearer(token))
    }

    @Test func tokensAreCheckedByEveryRule() async throws {
        let now = Date()
        let good = FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now))
        let valid = try await me(good)
        #expect(valid.status == 200, "\(String(decoding: valid.body, as: UTF8.self))")
        let user = try #require(valid.json?["user"] as? [String: Any])
        #expect(user["role"] as? String == "clinician" && user["organizationId"] as? String == "org-42",
                "a new Firebase user is placed by its custom claims")
        #expect(valid.json?["authentication"] as? String == "firebase")

        let t = Int(now.timeIntervalSince1970)
        let bad: [(String, String)] = [
            ("expired", FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now, overrides: ["exp": t - 600, "iat": t - 4000]))),
            ("future iat", FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now, overrides: ["iat": t + 600]))),
            ("wrong aud", FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now, overrides: ["aud": "someone-else"]))),
            ("wrong iss", FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now, overrides: ["iss": "https://securetoken.google.com/someone-else"]))),
            ("empty sub", FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: FirebaseFixtures.claims(now: now, overrides: ["sub": ""]))),
            ("bad signature", FirebaseFixtures.token(key: FirebaseFixtures.impostorA, claims: FirebaseFixtures.claims(now: now))),
            ("unknown kid", FirebaseFixtures.token(key: FirebaseFixtures.keyA, kid: "kid-nobody", claims: FirebaseFixtures.claims(now: now))),
            ("alg none", FirebaseFixtures.base64URL(FirebaseFixtures.json(["alg": "none", "kid": "kid-a-0001"])) + "."
                + FirebaseFixtures.base64URL(FirebaseFixtures.json(FirebaseFixtures.claims(now: now))) + "."),
            ("HS256 with the public key", hs256(FirebaseFixtures.claims(now: now))),
        ]
        for (name, token) in bad {
            let r = try await me(token)
            #expect(r.status == 401, "\(name) -> \(r.status)")
        }
    }

    @Test func aRotatedKeyIsFetchedAgain() async throws {
        let claims = FirebaseFixtures.claims(now: Date(), overrides: ["sub": "uid-rotated"])
        #expect(try await me(FirebaseFixtures.token(key: FirebaseFixtures.keyA, claims: claims)).status == 200)
        let before = certificates.requestCount
        certificates.setResponse(FirebaseFixtures.certificatesResponse([FirebaseFixtures.keyA, FirebaseFixtures.keyB]))
        #expect(try await me(FirebaseFixtures.token(key: FirebaseFixtures.keyB, claims: claims)).status == 200)
        #expect(certificates.requestCount == before + 1, "the new kid made the worker fetch the certificates again")
    }

    /// The classic confusion attack: HMAC-SHA256 keyed with the RSA certificate's PEM text.
    func hs256(_ claims: [String: Any]) -> String {
        let input = FirebaseFixtures.base64URL(FirebaseFixtures.json(["alg": "HS256", "kid": "kid-a-0001", "typ": "JWT"])) + "."
            + FirebaseFixtures.base64URL(FirebaseFixtures.json(claims))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(FirebaseFixtures.keyA.certificatePEM.utf8)))
        return input + "." + FirebaseFixtures.base64URL(Data(mac))
    }
}
