import Foundation
import MediscopeEncoding

/// Random secrets and the hashes under which they are stored.
///
/// Session, CSRF and API tokens are 32 random bytes from the system generator (getrandom(2) on Linux),
/// written as base64url without padding. The database only ever holds the SHA-256 (hex) of a token, so a
/// copy of the file does not let anyone sign in.
package enum Tokens {
    /// Prefix of API tokens: makes them recognisable in logs and secret scanners.
    package static let apiTokenPrefix = "msk_"
    /// Bytes of randomness in every token.
    package static let randomByteCount = 32

    /// `count` bytes from the system's cryptographic generator.
    package static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            for _ in 0..<8 where index < count {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// `bytes` random bytes as base64url without padding.
    package static func random(bytes: Int = randomByteCount) -> String {
        Base64URL.encode(randomBytes(bytes))
    }

    /// A new secret: 32 random bytes, base64url, no padding (43 characters).
    package static func newSecret() -> String {
        random(bytes: randomByteCount)
    }

    /// A new API token: "msk_" + a new secret.
    package static func newAPIToken() -> String {
        apiTokenPrefix + newSecret()
    }

    /// Lowercase hex of SHA-256 over the UTF-8 bytes of `token`.
    package static func sha256Hex(_ token: String) -> String {
        SHA256Hex.digest(token)
    }

    /// Compares two strings in time that depends only on their lengths (for hashes of equal length: constant).
    package static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// True for a string that could be a secret this module issued (43 base64url characters), so that
    /// obviously malformed input is refused without touching the database.
    static func looksLikeSecret(_ token: Substring) -> Bool {
        token.utf8.count == 43 && Base64URL.isAlphabet(token.utf8)
    }

    static func looksLikeSecret(_ token: String) -> Bool { looksLikeSecret(token[...]) }

    static func looksLikeAPIToken(_ token: String) -> Bool {
        token.hasPrefix(apiTokenPrefix) && looksLikeSecret(token.dropFirst(apiTokenPrefix.utf8.count))
    }
}
