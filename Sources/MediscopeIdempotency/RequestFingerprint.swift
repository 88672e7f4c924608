import Crypto
import MediscopeEncoding

/// The SHA-256 of a request's meaning, fed field by field: each field as its length (8 bytes,
/// big-endian) then its bytes, so no two lists of fields run together. A route feeds what decides its
/// outcome (a form's fields by name, a JSON body's decoded values), never framing a client may vary
/// between a request and its retry (a multipart boundary, JSON whitespace or key order).
package struct RequestFingerprint: Sendable {
    private var hasher = SHA256()

    /// An empty fingerprint; `label` (e.g. the route) starts it.
    package init(_ label: String? = nil) {
        if let label { add(Array(label.utf8)) }
    }

    /// Adds one field.
    package mutating func add(_ bytes: [UInt8]) {
        var length = UInt64(bytes.count).bigEndian
        withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
        hasher.update(data: bytes)
    }

    /// Adds one text field (its UTF-8 bytes).
    package mutating func add(_ text: String) { add(Array(text.utf8)) }

    /// The digest of the fields added so far.
    package var bytes: [UInt8] { Array(hasher.finalize()) }

    /// The same, as 64 lowercase hex digits.
    package var hex: String { Hex.encode(hasher.finalize()) }
}
