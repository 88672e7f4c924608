import Crypto
import FirebaseTestKit
import Foundation
@testable import MediscopeFirestore
import MediscopeEncoding
import Testing
import TestSupport
import _CryptoExtras

/// The service-account JWT bearer flow and the metadata server, against local servers that speak
/// Google's token endpoint wire format (RFC 6749 / RFC 7523); Google itself cannot be reached here.
@Suite struct CredentialsTests {
    static let key = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let otherKey = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    static func keyFile(tokenURI: URL, key: _RSA.Signing.PrivateKey = key) -> [UInt8] {
        let json: [String: String] = [
            "type": "service_account", "project_id": "demo", "private_key_id": "kid-123",
            "private_key": key.pemRepresentation, "client_email": "mediscope@demo.iam.gserviceaccount.com",
            "token_uri": tokenURI.absoluteString,
        ]
        return Array(try! JSONSerialization.data(withJSONObject: json))
    }

    /// A token endpoint that checks the assertion's RS256 signature with `trusted` and its claims.
    static func tokenEndpoint(trusted: _RSA.Signing.PublicKey, lifetime: Int = 3600) throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer { req, i in
            let form = Dictionary(uniqueKeysWithValues: String(decoding: req.body, as: UTF8.self).split(separator: "&").map {
                let kv = $0.split(separator: "=", maxSplits: 1)
                return (String(kv[0]), String(kv.count > 1 ? kv[1] : "").removingPercentEncoding ?? "")
            })
            guard req.method == "POST", req.headers["content-type"] == "application/x-www-form-urlencoded",
                  form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let jwt = form["assertion"] else {
                return .json(400, #"{"error":"invalid_request"}"#)
            }
            let parts = jwt.split(separator: ".").map(String.init)
            guard parts.count == 3, let sig = Base64URL.decode(parts[2]),
                  trusted.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: sig), for: Data("\(parts[0]).\(parts[1])".utf8),
                                           padding: .insecurePKCS1v1_5) else {
                return .json(400, #"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#)
            }
            return .json(200, #"{"access_token":"ya29.token-\#(i)","expires_in":\#(lifetime),"token_type":"Bearer"}"#)
        }
    }

    static func claims(of request: ScriptedHTTPServer.Request) throws -> ([String: Any], [String: Any]) {
        let body = String(decoding: request.body, as: UTF8.self)
        let jwt = try #require(body.split(separator: "&").first { $0.hasPrefix("assertion=") }?.dropFirst(10))
        let parts = jwt.split(separator: ".").map { Base64URL.decode(String($0)) ?? [] }
        let header = try JSONSerialization.jsonObject(with: Data(parts[0])) as? [String: Any] ?? [:]
        let claims = try JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any] ?? [:]
        return (header, claims)
    }

    @Test func aSignedJWTIsExchangedForATokenThatIsCachedUntilNearItsExpiry() throws {
        let server = try Self.tokenEndpoint(trusted: Self.key.publicKey)
        let tokenURI = server.baseURL.appendingPathComponent("token")
        let clock = LockedBox<[Date]>([])
        clock.append(Date(timeIntervalSince1970: 1_764_435_600))
        let credentials = try ServiceAccountCredentials(keyFileJSON: Self.keyFile(tokenURI: tokenURI), now: { clock.value.last! })
        #expect(try credentials.accessToken(forceRefresh: false) == "ya29.token-0")
        #expect(try credentials.accessToken(forceRefresh: false) == "ya29.token-0", "cached")
        #expect(server.requests.count == 1)
        let (header, claims) = try Self.claims(of: server.requests[0])
        #expect(header["alg"] as? String == "RS256" && header["kid"] as? String == "kid-123")
        #expect(claims["iss"] as? String == "mediscope@demo.iam.gserviceaccount.com")
        #expect(claims["aud"] as? String == tokenURI.absoluteString)
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/datastore")
        #expect((claims["exp"] as? Int).map { $0 - (claims["iat"] as? Int ?? 0) } == 3600)

        clock.append(clock.value.last!.addingTimeInterval(3600 - 30))  // within a minute of expiry: fetch anew
        #expect(try credentials.accessToken(forceRefresh: false) == "ya29.token-1")
        #expect(try credentials.accessToken(forceRefresh: true) == "ya29.token-2", "UNAUTHENTICATED drops the cache")
    }

    @Test func anExpiredTokenIsNeverServed() throws {
        let server = try Self.tokenEndpoint(trusted: Self.key.publicKey, lifetime: 30)
        let credentials = try ServiceAccountCredentials(keyFileJSON: Self.keyFile(tokenURI: server.baseURL.appendingPathComponent("token")))
        _ = try credentials.accessToken(forceRefresh: false)
        _ = try credentials.accessToken(forceRefresh: false)
        #expect(server.requests.count == 2, "a 30 s token is inside the refresh margin: never reused")
    }

    @Test func theWrongKeyIsRefusedAndTheKeyIsNeverQuoted() throws {
        let server = try Self.tokenEndpoint(trusted: Self.otherKey.publicKey)
        let credentials = try ServiceAccountCredentials(keyFileJSON: Self.keyFile(tokenURI: server.baseURL.appendingPathComponent("token")))
        do {
            _ = try credentials.accessToken(forceRefresh: false)
            Issue.record("a token was issued for the wrong key")
        } catch {
            #expect(error.status == .unauthenticated && error.message.contains("invalid_grant"))
            #expect(!error.description.contains("PRIVATE KEY") && !error.description.contains(String(Self.key.pemRepresentation.dropFirst(40).prefix(40))))
        }
    }

    @Test func aTokenEndpointThatIsDownIsUnavailable() throws {
        let server = try Self.tokenEndpoint(trusted: Self.key.publicKey)
        let uri = server.baseURL.appendingPathComponent("token")
        server.stop()
        let credentials = try ServiceAccountCredentials(keyFileJSON: Self.keyFile(tokenURI: uri))
        #expect { try credentials.accessToken(forceRefresh: false) } throws: { ($0 as? FirestoreError)?.status == .unavailable }
        let failing = try ScriptedHTTPServer { _, _ in .json(503, #"{"error":"backend_error"}"#) }
        let overloaded = try ServiceAccountCredentials(keyFileJSON: Self.keyFile(tokenURI: failing.baseURL.appendingPathComponent("token")))
        #expect { try overloaded.accessToken(forceRefresh: false) } throws: { ($0 as? FirestoreError)?.status == .unavailable }
    }

    @Test(arguments: [#"{}"#, #"{"client_email":"a@b","private_key":"not a pem"}"#, #"{"type":"authorized_user","client_email":"a","private_key":"x"}"#])
    func unusableKeyFilesAreClearErrors(json: String) {
        #expect { try ServiceAccountCredentials(keyFileJSON: Array(json.utf8)) } throws: {
            ($0 as? FirestoreError)?.status == .unauthenticated && !(($0 as? FirestoreError)?.message.isEmpty ?? true)
        }
    }

    @Test func theMetadataServerIsAskedWithItsHeader() throws {
        let server = try ScriptedHTTPServer { req, _ in
            req.headers["metadata-flavor"] == "Google"
                ? .json(200, #"{"access_token":"ya29.gce","expires_in":3599,"token_type":"Bearer"}"#) : .json(403, "{}")
        }
        let credentials = MetadataServerCredentials(url: server.baseURL.appendingPathComponent("computeMetadata/v1/instance/service-accounts/default/token"))
        #expect(try credentials.accessToken(forceRefresh: false) == "ya29.gce")
        #expect(server.requests.first?.method == "GET" && server.requests.first?.path.hasSuffix("/default/token") == true)
    }
}
