import Crypto

/// Lowercase hexadecimal, the form every stored digest takes (image keys, token hashes).
package enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Two lowercase hex digits per byte.
    package static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 (swift-crypto) as lowercase hex: content-addressed image keys and the hashes tokens are stored under.
package enum SHA256Hex {
    /// The 64-character lowercase hex digest of `bytes`.
    package static func digest(_ bytes: [UInt8]) -> String {
        Hex.encode(SHA256.hash(data: bytes))
    }

    /// The digest of the UTF-8 bytes of `text`.
    package static func digest(_ text: String) -> String {
        digest(Array(text.utf8))
    }
}

/// base64url (RFC 4648 §5) without padding: tokens, paging cursors, JWS segments (RFC 7515 §2).
package enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// The unpadded base64url text of `bytes`.
    package static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity((bytes.underestimatedCount * 4 + 2) / 3)
        var acc: UInt32 = 0
        var bits = 0
        for byte in bytes {
            acc = (acc << 8) | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(alphabet[Int((acc >> UInt32(bits)) & 63)])
            }
            acc &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(alphabet[Int((acc << UInt32(6 - bits)) & 63)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: nil for padding, whitespace, characters outside the alphabet, a length that cannot
    /// encode whole bytes, or non-zero trailing bits (so every byte string has exactly one accepted text).
    package static func decode<Text: Collection>(_ text: Text) -> [UInt8]? where Text.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            guard let v = value(of: c) else { return nil }
            acc = (acc << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        // One leftover character (6 bits) cannot encode a byte; leftover bits must be zero (canonical form).
        guard bits < 6, acc == 0 else { return nil }
        return out
    }

    /// Strict decoding of the UTF-8 bytes of `text`.
    package static func decode(_ text: String) -> [UInt8]? { decode(text.utf8) }

    /// True when every byte of `text` is in the base64url alphabet.
    package static func isAlphabet<Text: Sequence>(_ text: Text) -> Bool where Text.Element == UInt8 {
        text.allSatisfy { value(of: $0) != nil }
    }

    private static func value(of c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
