import Crypto
import Foundation
import MediscopeEncoding
import MediscopeNet
import X509
import _CryptoExtras

// Verification of Firebase Authentication ID tokens, following Google's rules for verifying
// ID tokens with a third-party JWT library
// (https://firebase.google.com/docs/auth/admin/verify-id-tokens#verify_id_tokens_using_a_third-party_jwt_library):
//
//   header   alg == "RS256"; kid names one of the keys published at
//            https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com
//   payload  exp in the future, iat in the past, auth_time in the past, aud == <projectId>,
//            iss == "https://securetoken.google.com/<projectId>", sub a non-empty string (<= 128 chars, the uid)
//   signature RSASSA-PKCS1-v1_5 / SHA-256 over "<header>.<payload>" with that key
//   keys     cached until the Cache-Control max-age of the certificate response.
//
// Clock skew: Google's own verifiers tolerate skew on the time claims (google-auth for Python takes
// `clock_skew_in_seconds` for iat/exp and firebase-admin lets callers set 0...60 s; the Java/.NET/Go
// Admin SDKs allow up to 5 minutes on iat/exp). We allow `FirebaseTokenVerifier.clockSkew` (60 s) on
// `exp` and `iat`, and the same on `auth_time` (which is <= iat for a token minted at sign-in, so a
// stricter auth_time check would undo the iat tolerance for every fresh sign-in). Nothing else is lenient.

/// Why a Firebase ID token was refused. `certificatesUnavailable` means we could not check the token
/// at all (Google's key endpoint failed): callers should answer 503, not 401. Messages never contain the token.
package enum FirebaseTokenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a compact JWS: wrong segment count, bad base64url, bad JSON, missing/mistyped claims, too large.
    case malformed
    /// Header `alg` is not exactly "RS256" (rejects "none", "HS256", "RS512", ...).
    case unsupportedAlgorithm
    /// Header `kid` is not one of Google's current keys (after at most one refetch).
    case unknownKey
    /// The RSA signature does not verify.
    case badSignature
    case expired
    /// `iat` or `auth_time` lies in the future.
    case issuedInFuture
    case wrongAudience
    case wrongIssuer
    /// `sub` missing, empty, not a string or longer than 128 characters.
    case missingSubject
    /// Google's certificates could not be fetched or parsed; the reason is for logs.
    case certificatesUnavailable(String)

    package var message: String {
        switch self {
        case .malformed: return "malformed ID token"
        case .unsupportedAlgorithm: return "ID token algorithm must be RS256"
        case .unknownKey: return "ID token signed with an unknown key"
        case .badSignature: return "ID token signature is invalid"
        case .expired: return "ID token has expired"
        case .issuedInFuture: return "ID token issued in the future"
        case .wrongAudience: return "ID token has the wrong audience"
        case .wrongIssuer: return "ID token has the wrong issuer"
        case .missingSubject: return "ID token has no valid subject"
        case .certificatesUnavailable(let why): return "Firebase certificates unavailable: \(why)"
        }
    }

    package var description: String { message }

    /// The HTTP status a caller should answer with: 503 when we could not verify, else 401.
    package var httpStatus: Int {
        if case .certificatesUnavailable = self { return 503 }
        return 401
    }
}

/// The verified contents of a Firebase ID token.
package struct FirebaseClaims: Sendable, Equatable {
    /// Firebase user id (`sub`).
    package var uid: String
    package var email: String?
    package var emailVerified: Bool?
    /// When the user signed in (`auth_time`).
    package var authTime: Date
    package var issuedAt: Date
    package var expiresAt: Date
    /// `firebase.sign_in_provider` (e.g. "password", "google.com"), if present.
    package var signInProvider: String?
    /// Custom claim `mediscope_role`, if present and a string.
    package var role: String?
    /// Custom claim `mediscope_org`, if present and a string.
    package var organization: String?

    package init(uid: String, email: String?, emailVerified: Bool?, authTime: Date, issuedAt: Date, expiresAt: Date,
                signInProvider: String? = nil, role: String? = nil, organization: String? = nil) {
        self.uid = uid; self.email = email; self.emailVerified = emailVerified; self.authTime = authTime
        self.issuedAt = issuedAt; self.expiresAt = expiresAt; self.signInProvider = signInProvider
        self.role = role; self.organization = organization
    }

    /// The email address only when Firebase says its owner proved it (`email_verified` true): anyone can
    /// create a Firebase account with someone else's address, unverified. What may name a user (a display
    /// name, the signer of a report).
    package var verifiedEmail: String? { emailVerified == true ? email : nil }
}

/// Verifies Firebase ID tokens against Google's published signing certificates.
///
/// Thread-safe (one lock; a certificate fetch happens under it, so concurrent verifications wait for
/// the fetch rather than stampeding Google). Designed for long-lived use: create one per process.
package final class FirebaseTokenVerifier: @unchecked Sendable {
    package typealias Fetch = @Sendable (URL) throws -> (status: Int, body: [UInt8], cacheControl: String?)

    package static let defaultCertificatesURL =
        URL(string: "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com")!
    /// Tolerance on exp / iat / auth_time (see the file header).
    package static let clockSkew: TimeInterval = 60
    /// Longest token accepted, in bytes (Firebase ID tokens are ~1 KB; custom claims are capped at 1000 bytes).
    package static let maxTokenBytes = 8192
    /// Cache lifetime when the response has no usable `max-age`.
    package static let defaultCacheLifetime: TimeInterval = 3600
    /// `max-age` is clamped into this range (a bogus max-age=0 must not make every request fetch).
    package static let cacheLifetimeRange: ClosedRange<TimeInterval> = 60...86_400
    /// An unknown `kid` triggers a refetch at most this often.
    package static let unknownKeyRefetchInterval: TimeInterval = 30
    /// After a failed fetch, further fetches wait this long (requests fail fast with 503 meanwhile).
    package static let failureBackoff: TimeInterval = 5

    package let projectId: String
    package let certificatesURL: URL
    private let now: @Sendable () -> Date
    private let fetch: Fetch
    private let expectedIssuer: String

    private let lock = NSLock()
    private var keys: [String: _RSA.Signing.PublicKey] = [:]
    private var keysExpireAt: Date = .distantPast
    private var lastFetchAt: Date?
    /// When an unknown kid last caused a refetch: that, not the routine fetch, is what is rate-limited,
    /// so a rotation right after start-up is still picked up at once.
    private var lastUnknownKeyRefetchAt: Date?
    private var lastFailure: (at: Date, reason: String)?

    package init(
        projectId: String,
        certificatesURL: URL = FirebaseTokenVerifier.defaultCertificatesURL,
        now: @escaping @Sendable () -> Date = Date.init,
        fetch: @escaping Fetch = { try CurlHTTP.get($0, timeout: 5) }
    ) {
        self.projectId = projectId
        self.certificatesURL = certificatesURL
        self.now = now
        self.fetch = fetch
        self.expectedIssuer = "https://securetoken.google.com/" + projectId
    }

    /// Verifies `token` and returns its claims, or throws why it is not acceptable.
    package func verify(_ token: String) throws(FirebaseTokenError) -> FirebaseClaims {
        // 1. Structure: exactly three base64url segments, JSON header and payload.
        let utf8 = token.utf8
        guard !projectId.isEmpty, utf8.count <= Self.maxTokenBytes else { throw .malformed }
        let parts = utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Base64URL.decode(parts[0]),
              let payloadBytes = Base64URL.decode(parts[1]),
              let signature = Base64URL.decode(parts[2]),
              case .object(let header)? = FirebaseJSONValue.parse(headerBytes),
              case .object(let payload)? = FirebaseJSONValue.parse(payloadBytes)
        else { throw .malformed }

        // 2. Header: RS256 only (so "none" with its empty signature is reported as such); kid required.
        guard case .string("RS256")? = header["alg"] else { throw .unsupportedAlgorithm }
        guard !signature.isEmpty, case .string(let kid)? = header["kid"], !kid.isEmpty else { throw .malformed }
        // RFC 7515 §4.1.11: extensions we do not understand must not be ignored (Firebase never sets "crit").
        guard header["crit"] == nil else { throw .malformed }

        // 3. Key and signature.
        let key = try publicKey(for: kid)
        guard signature.count * 8 == key.keySizeInBits else { throw .badSignature }
        var signingInput = [UInt8]()
        signingInput.reserveCapacity(parts[0].count + 1 + parts[1].count)
        signingInput.append(contentsOf: parts[0])
        signingInput.append(UInt8(ascii: "."))
        signingInput.append(contentsOf: parts[1])
        guard key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature),
                                   for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5)
        else { throw .badSignature }

        // 4. Claims.
        guard let exp = payload["exp"]?.timestamp, let iat = payload["iat"]?.timestamp,
              let authTime = payload["auth_time"]?.timestamp
        else { throw .malformed }
        let t = now().timeIntervalSince1970
        guard exp + Self.clockSkew > t else { throw .expired }
        guard iat - Self.clockSkew <= t, authTime - Self.clockSkew <= t else { throw .issuedInFuture }
        guard case .string(let aud)? = payload["aud"], aud == projectId else { throw .wrongAudience }
        guard case .string(let iss)? = payload["iss"], iss == expectedIssuer else { throw .wrongIssuer }
        guard case .string(let sub)? = payload["sub"], !sub.isEmpty, sub.count <= 128 else { throw .missingSubject }

        var provider: String?
        if case .object(let firebase)? = payload["firebase"], case .string(let p)? = firebase["sign_in_provider"] {
            provider = p
        }
        return FirebaseClaims(
            uid: sub,
            email: payload["email"]?.string,
            emailVerified: payload["email_verified"]?.bool,
            authTime: Date(timeIntervalSince1970: authTime),
            issuedAt: Date(timeIntervalSince1970: iat),
            expiresAt: Date(timeIntervalSince1970: exp),
            signInProvider: provider,
            role: payload["mediscope_role"]?.string,
            organization: payload["mediscope_org"]?.string
        )
    }

    // MARK: - Key cache

    private func publicKey(for kid: String) throws(FirebaseTokenError) -> _RSA.Signing.PublicKey {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        if t < keysExpireAt {
            if let key = keys[kid] { return key }
            // Unknown kid with a fresh cache: Google may have rotated; refetch, but rarely.
            if let last = lastUnknownKeyRefetchAt, t.timeIntervalSince(last) < Self.unknownKeyRefetchInterval { throw .unknownKey }
            lastUnknownKeyRefetchAt = t
        }
        try refresh(at: t)
        guard let key = keys[kid] else { throw .unknownKey }
        return key
    }

    /// Fetches and replaces the key set. Caller holds the lock.
    private func refresh(at t: Date) throws(FirebaseTokenError) {
        if let failure = lastFailure, t.timeIntervalSince(failure.at) < Self.failureBackoff,
           t >= failure.at {
            throw .certificatesUnavailable(failure.reason)
        }
        do {
            let result: (status: Int, body: [UInt8], cacheControl: String?)
            do { result = try fetch(certificatesURL) } catch {
                throw FirebaseTokenError.certificatesUnavailable(String(describing: error))
            }
            guard result.status == 200 else { throw FirebaseTokenError.certificatesUnavailable("HTTP \(result.status)") }
            guard case .object(let doc)? = FirebaseJSONValue.parse(result.body) else {
                throw FirebaseTokenError.certificatesUnavailable("certificate document is not a JSON object")
            }
            var parsed: [String: _RSA.Signing.PublicKey] = [:]
            for (kid, value) in doc {
                guard case .string(let pem) = value,
                      let certificate = try? Certificate(pemEncoded: pem),
                      let key = _RSA.Signing.PublicKey(certificate.publicKey)
                else { continue } // skip entries we cannot use; the rest stay valid
                parsed[kid] = key
            }
            guard !parsed.isEmpty else {
                throw FirebaseTokenError.certificatesUnavailable("no usable RSA certificates in response")
            }
            keys = parsed
            keysExpireAt = t.addingTimeInterval(Self.cacheLifetime(cacheControl: result.cacheControl))
            lastFetchAt = t
            lastFailure = nil
        } catch let error as FirebaseTokenError {
            lastFailure = (t, error.reasonForBackoff)
            // Keys whose max-age passed are not used: a failed refresh means we cannot verify.
            if t >= keysExpireAt { keys = [:] }
            throw error
        } catch {
            lastFailure = (t, String(describing: error))
            throw .certificatesUnavailable(String(describing: error))
        }
    }

    /// Seconds to cache the certificates for: `max-age` from Cache-Control, clamped; 1 h if absent.
    static func cacheLifetime(cacheControl: String?) -> TimeInterval {
        guard let cacheControl else { return defaultCacheLifetime }
        for directive in cacheControl.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1)
            guard parts.count == 2,
                  parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "max-age" else { continue }
            var value = parts[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return defaultCacheLifetime }
            let seconds = TimeInterval(value.prefix(9)) ?? defaultCacheLifetime
            return min(max(seconds, cacheLifetimeRange.lowerBound), cacheLifetimeRange.upperBound)
        }
        return defaultCacheLifetime
    }
}

private extension FirebaseTokenError {
    var reasonForBackoff: String {
        if case .certificatesUnavailable(let why) = self { return why }
        return message
    }
}

// MARK: - Minimal strict JSON value (distinguishes bools from numbers)

enum FirebaseJSONValue: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([FirebaseJSONValue]), object([String: FirebaseJSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([FirebaseJSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: FirebaseJSONValue].self)) }
    }

    static func parse(_ bytes: [UInt8]) -> FirebaseJSONValue? {
        guard !bytes.isEmpty else { return nil }
        return try? JSONDecoder().decode(FirebaseJSONValue.self, from: Data(bytes))
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// A NumericDate (seconds since the epoch): finite and non-negative.
    var timestamp: Double? {
        if case .number(let n) = self, n.isFinite, n >= 0, n < 1e11 { return n }
        return nil
    }
}
