import Crypto
import Foundation
import X509
import _CryptoExtras
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Fixtures for the Firebase tests: a tiny blocking HTTP/1.1 server on 127.0.0.1, generated RSA keys
// with self-signed X.509 certificates, a token signer and an adjustable clock.

/// Google's certificate endpoint stand-in: every GET gets the current response; `requestCount` counts
/// the GET requests it answered. A thin layer over `ScriptedHTTPServer`.
final class FirebaseTestHTTPServer: @unchecked Sendable {
    struct Response: Sendable {
        var status: Int = 200
        var headers: [(String, String)] = []
        var body: [UInt8] = []
    }

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var response = Response()
        var requests = 0
    }

    private let state = State()
    private let server: ScriptedHTTPServer
    var port: UInt16 { server.port }
    var url: URL { URL(string: "http://127.0.0.1:\(port)/robot/v1/metadata/x509/securetoken")! }

    init(_ response: Response = Response()) throws {
        state.response = response
        let state = self.state
        server = try ScriptedHTTPServer { request, _ in
            guard request.method == "GET" else { return .init(status: 405, headers: [], body: []) }
            let r = state.lock.withLock { () -> Response in
                state.requests += 1
                return state.response
            }
            return .init(status: r.status, headers: r.headers, body: r.body)
        }
    }

    var requestCount: Int { state.lock.withLock { state.requests } }

    func setResponse(_ response: Response) { state.lock.withLock { state.response = response } }

    /// Stops accepting and closes the listening socket (afterwards connections are refused).
    func stop() { server.stop() }
}

/// An RSA signing key with its self-signed certificate, as Google publishes them.
struct FirebaseTestKey: Sendable {
    let kid: String
    let privateKey: _RSA.Signing.PrivateKey
    let certificatePEM: String

    init(kid: String) throws {
        self.kid = kid
        privateKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName { CommonName("securetoken.system.gserviceaccount.com") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(privateKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(86_400 * 2),
            issuer: name,
            subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions(),
            issuerPrivateKey: Certificate.PrivateKey(privateKey)
        )
        certificatePEM = try certificate.serializeAsPEM().pemString
    }
}

/// Keys are expensive to generate: made once per test process.
enum FirebaseFixtures {
    static let projectId = "mediscope-test"
    static let keyA = try! FirebaseTestKey(kid: "kid-a-0001")
    static let keyB = try! FirebaseTestKey(kid: "kid-b-0002")
    /// Same kid as keyA, different key material (forgery attempts).
    static let impostorA = try! FirebaseTestKey(kid: "kid-a-0001")

    static func certificatesJSON(_ keys: [FirebaseTestKey]) -> [UInt8] {
        var doc: [String: String] = [:]
        for key in keys { doc[key.kid] = key.certificatePEM }
        return Array(try! JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys]))
    }

    static func certificatesResponse(_ keys: [FirebaseTestKey], cacheControl: String? = "public, max-age=600, must-revalidate, no-transform")
        -> FirebaseTestHTTPServer.Response {
        var headers = [("Content-Type", "application/json; charset=UTF-8")]
        if let cacheControl { headers.append(("Cache-Control", cacheControl)) }
        return .init(status: 200, headers: headers, body: certificatesJSON(keys))
    }

    static func base64URL(_ bytes: some DataProtocol) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    /// Claims of a good token at `now` for the test project.
    static func claims(now: Date, overrides: [String: Any] = [:], removing: [String] = []) -> [String: Any] {
        let t = now.timeIntervalSince1970.rounded(.down)
        var claims: [String: Any] = [
            "iss": "https://securetoken.google.com/\(projectId)",
            "aud": projectId,
            "sub": "uid-0123456789",
            "user_id": "uid-0123456789",
            "auth_time": Int(t - 300),
            "iat": Int(t - 60),
            "exp": Int(t + 3540),
            "email": "dr.who@example.org",
            "email_verified": true,
            "mediscope_role": "clinician",
            "mediscope_org": "org-42",
            "firebase": ["sign_in_provider": "password", "identities": ["email": ["dr.who@example.org"]]],
        ]
        for (k, v) in overrides { claims[k] = v }
        for k in removing { claims[k] = nil }
        return claims
    }

    /// A compact RS256 JWS signed with `key` (header and payload as given).
    static func token(header: [String: Any], claims: [String: Any], key: FirebaseTestKey) -> String {
        let signingInput = base64URL(json(header)) + "." + base64URL(json(claims))
        let signature = try! key.privateKey.signature(for: SHA256.hash(data: Array(signingInput.utf8)), padding: .insecurePKCS1v1_5)
        return signingInput + "." + base64URL(signature.rawRepresentation)
    }

    static func token(key: FirebaseTestKey, kid: String? = nil, claims: [String: Any]) -> String {
        token(header: ["alg": "RS256", "kid": kid ?? key.kid, "typ": "JWT"], claims: claims, key: key)
    }
}

/// An injectable clock the tests move by hand.
final class FirebaseTestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    init(_ start: Date = Date()) { current = start }
    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}

/// Counts calls of a fake fetch.
final class FirebaseFetchCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}
