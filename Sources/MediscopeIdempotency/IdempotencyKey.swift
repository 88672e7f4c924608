import Crypto
import Foundation
import MediscopeSQLite

/// The value of an Idempotency-Key request header (IETF httpapi draft "The Idempotency-Key HTTP Header
/// Field"): a Structured Field String (`"8e03978e-40d5-43e8-bc93-6894a57f9324"`), or the same text
/// unquoted as many clients send it. The key itself is the client's text and may say anything: it is
/// never logged or stored, only digests of it are.
package struct IdempotencyKey: Sendable, Equatable {
    /// Longest key accepted, in characters (a UUID is 36; Stripe allows 255).
    package static let maxLength = 255

    /// The key's text, unquoted.
    package let value: String

    /// Why a header value is not a key (the 400's detail).
    package struct Malformed: Error, Equatable {
        /// What is wrong, for the client.
        package let reason: String
    }

    /// Parses a header value. Throws `Malformed` for an empty or overlong key, characters outside
    /// printable ASCII, a broken quoted string, or spaces in an unquoted one.
    package init(header: String) throws(Malformed) {
        let text = header.trimmingCharacters(in: .whitespaces)
        var value = ""
        if text.hasPrefix("\"") {
            // RFC 8941 §3.3.3: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE
            var escaped = false, closed = false
            for scalar in text.unicodeScalars.dropFirst() {
                guard !closed else { throw Malformed(reason: "the Idempotency-Key has text after its closing quote") }
                guard (0x20...0x7E).contains(scalar.value) else {
                    throw Malformed(reason: "the Idempotency-Key must be printable ASCII")
                }
                if escaped {
                    guard scalar == "\"" || scalar == "\\" else {
                        throw Malformed(reason: "the Idempotency-Key escapes only a quote or a backslash")
                    }
                    value.unicodeScalars.append(scalar)
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    closed = true
                } else {
                    value.unicodeScalars.append(scalar)
                }
            }
            guard closed else { throw Malformed(reason: "the Idempotency-Key's quoted string is not closed") }
        } else {
            guard text.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) && $0 != "\"" && $0 != "\\" }) else {
                throw Malformed(reason: "an unquoted Idempotency-Key must be printable ASCII without spaces, quotes or "
                                + "backslashes; send it as a quoted string")
            }
            value = text
        }
        guard !value.isEmpty else { throw Malformed(reason: "the Idempotency-Key is empty") }
        guard value.count <= Self.maxLength else {
            throw Malformed(reason: "the Idempotency-Key is longer than \(Self.maxLength) characters")
        }
        self.value = value
    }

    /// What the key names, as the key store files it: this key of this user of this organisation, for
    /// this method and path (the same key on another route is another key). 64 hex digits.
    package func scope(organizationId: String, userId: String, method: String, path: String) -> String {
        Self.digest(["scope", organizationId, userId, method, path, value]).hex
    }

    /// The id of the analysis a create under this key makes for the request with `fingerprint`
    /// (`SortableID.derived`): the same on every host, so a request retried on another host makes the
    /// same record, which delivery then keeps once; and never the id of another request under the key
    /// (another patient's upload must never share a record id with this one, on any host).
    package func analysisId(organizationId: String, userId: String, fingerprint: String) -> String {
        SortableID.derived(from: Self.digest(["analysis", organizationId, userId, value, fingerprint]).bytes)
    }

    /// The fingerprint of `parts` as one list of fields (`RequestFingerprint`).
    static func digest(_ parts: [String]) -> RequestFingerprint {
        var fingerprint = RequestFingerprint()
        for part in parts { fingerprint.add(Array(part.utf8)) }
        return fingerprint
    }
}
