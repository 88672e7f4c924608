import Crypto
import Foundation
import MediscopeEncoding
import MediscopeNet
import Synchronization
import _CryptoExtras

/// Where an OAuth 2.0 access token for Firestore comes from.
package protocol AccessTokenProvider: Sendable {
    /// A token to send as `Authorization: Bearer …`; `forceRefresh` drops a cached one first (after
    /// an UNAUTHENTICATED answer). Throws UNAUTHENTICATED when the credentials are refused, UNAVAILABLE
    /// when the token service cannot be reached.
    func accessToken(forceRefresh: Bool) throws(FirestoreError) -> String
}

/// The emulator accepts any request bearing `owner`, as Google's client libraries send it.
package struct EmulatorCredentials: AccessTokenProvider {
    package init() {}
    package func accessToken(forceRefresh: Bool) throws(FirestoreError) -> String { "owner" }
}

/// A token with its expiry, cached until shortly before it runs out.
final class TokenCache: Sendable {
    private let state = Mutex<(token: String, expires: Date)?>(nil)
    /// Refresh this long before the expiry Google states.
    static let margin: TimeInterval = 60

    func get(now: Date, forceRefresh: Bool, fetch: () throws(FirestoreError) -> (String, TimeInterval)) throws(FirestoreError) -> String {
        if !forceRefresh, let cached = state.withLock({ $0 }), cached.expires.timeIntervalSince(now) > Self.margin {
            return cached.token
        }
        let (token, lifetime) = try fetch()
        state.withLock { $0 = (token, now.addingTimeInterval(lifetime)) }
        return token
    }
}

/// The OAuth 2.0 token endpoint's answer (RFC 6749 section 5.1) and its error (section 5.2).
struct TokenResponse: Decodable {
    var access_token: String?
    var expires_in: Double?
    var error: String?
    var error_description: String?

    static func read(_ response: HTTPClientResponse, from what: String) throws(FirestoreError) -> (String, TimeInterval) {
        let body = try? JSONDecoder().decode(TokenResponse.self, from: Data(response.body))
        guard (200..<300).contains(response.status) else {
            let reason = [body?.error, body?.error_description].compactMap { $0 }.joined(separator: ": ")
            let status: FirestoreError.Status = response.status >= 500 || response.status == 429 ? .unavailable : .unauthenticated
            throw FirestoreError(status, httpStatus: response.status, "\(what) refused the credentials (HTTP \(response.status))"
                                 + (reason.isEmpty ? "" : ": \(reason.prefix(200))"))
        }
        guard let token = body?.access_token, !token.isEmpty else {
            throw FirestoreError(.unauthenticated, httpStatus: response.status, "\(what) sent no access_token")
        }
        return (token, max(0, body?.expires_in ?? 3600))
    }
}

/// A service account's JSON key: a JWT signed with its RSA key (RS256) is exchanged at the key's
/// `token_uri` for an access token (Google's "OAuth 2.0 for server to server applications").
/// The private key never leaves this type: no error or log quotes it.
package final class ServiceAccountCredentials: AccessTokenProvider {
    /// The fields of a key file that the flow needs.
    struct Key: Decodable {
        var type: String?
        var client_email: String
        var private_key: String
        var private_key_id: String?
        var token_uri: String?
    }

    package static let scope = "https://www.googleapis.com/auth/datastore"
    package let clientEmail: String
    let keyId: String?
    let tokenURI: URL
    private let signingKey: _RSA.Signing.PrivateKey
    private let cache = TokenCache()
    let now: @Sendable () -> Date

    /// Reads the key file JSON. Throws UNAUTHENTICATED naming what is missing or unreadable.
    package init(keyFileJSON: [UInt8], now: @escaping @Sendable () -> Date = Date.init) throws(FirestoreError) {
        let key: Key
        do { key = try JSONDecoder().decode(Key.self, from: Data(keyFileJSON)) } catch {
            throw FirestoreError(.unauthenticated, "the service account key file is not a JSON key (client_email and private_key are needed)")
        }
        guard key.type == nil || key.type == "service_account" else {
            throw FirestoreError(.unauthenticated, "the key file is of type \(key.type!.prefix(40)), not service_account")
        }
        do { signingKey = try _RSA.Signing.PrivateKey(pemRepresentation: key.private_key) } catch {
            throw FirestoreError(.unauthenticated, "the service account's private_key is not an RSA key in PEM")
        }
        guard let uri = URL(string: key.token_uri ?? "https://oauth2.googleapis.com/token"), uri.scheme == "https" || uri.scheme == "http" else {
            throw FirestoreError(.unauthenticated, "the key file's token_uri is not an http(s) URL")
        }
        clientEmail = key.client_email
        keyId = key.private_key_id
        tokenURI = uri
        self.now = now
    }

    package func accessToken(forceRefresh: Bool) throws(FirestoreError) -> String {
        try cache.get(now: now(), forceRefresh: forceRefresh) { () throws(FirestoreError) in
            let body = "grant_type=" + "urn:ietf:params:oauth:grant-type:jwt-bearer".formEncoded + "&assertion=" + (try assertion())
            let request = HTTPClientRequest(method: "POST", url: tokenURI, headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                            body: Array(body.utf8), timeout: 10, connectTimeout: 3)
            let response: HTTPClientResponse
            do throws(CurlError) { response = try CurlHTTP.perform(request) } catch {
                throw FirestoreError(.unavailable, "the token endpoint cannot be reached: \(error.message)")
            }
            return try TokenResponse.read(response, from: "the token endpoint")
        }
    }

    /// The signed JWT: header {alg RS256, typ JWT, kid}, claims {iss, scope, aud = token_uri, iat, exp = iat + 1 h}.
    func assertion() throws(FirestoreError) -> String {
        let issuedAt = Int(now().timeIntervalSince1970)
        var header: [String: String] = ["alg": "RS256", "typ": "JWT"]
        if let keyId { header["kid"] = keyId }
        let claims: [String: Any] = ["iss": clientEmail, "scope": Self.scope, "aud": tokenURI.absoluteString,
                                     "iat": issuedAt, "exp": issuedAt + 3600]
        do {
            let h = Base64URL.encode(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
            let c = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
            let signature = try signingKey.signature(for: Data("\(h).\(c)".utf8), padding: .insecurePKCS1v1_5)
            return "\(h).\(c).\(Base64URL.encode(signature.rawRepresentation))"
        } catch {
            throw FirestoreError(.unauthenticated, "the token request cannot be signed")
        }
    }
}

/// On Google Compute Engine (and GKE, Cloud Run): the metadata server's token for the instance's
/// service account, asked with `Metadata-Flavor: Google`.
package final class MetadataServerCredentials: AccessTokenProvider {
    package static let defaultURL = URL(string: "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token")!
    let url: URL
    private let cache = TokenCache()

    package init(url: URL = MetadataServerCredentials.defaultURL) { self.url = url }

    package func accessToken(forceRefresh: Bool) throws(FirestoreError) -> String {
        try cache.get(now: Date(), forceRefresh: forceRefresh) { () throws(FirestoreError) in
            let request = HTTPClientRequest(method: "GET", url: url, headers: [("Metadata-Flavor", "Google")], timeout: 5, connectTimeout: 2)
            let response: HTTPClientResponse
            do throws(CurlError) { response = try CurlHTTP.perform(request) } catch {
                throw FirestoreError(.unavailable, "the metadata server cannot be reached: \(error.message)")
            }
            return try TokenResponse.read(response, from: "the metadata server")
        }
    }
}

extension String {
    /// application/x-www-form-urlencoded value encoding (unreserved characters kept).
    var formEncoded: String {
        addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? self
    }
}
