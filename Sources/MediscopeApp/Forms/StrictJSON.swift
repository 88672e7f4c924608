import MediscopeServer

/// The one check every JSON request body passes before it is decoded (`AccountAPI.decodeJSON`, used by
/// every route that reads JSON): well-formed JSON (RFC 8259), each key at most once in an object, and
/// nested at most `maxDepth` objects and arrays deep.
///
/// Foundation's decoder keeps one of two values given under the same key without a word, so
/// `{"text": "FIRST", "baseVersion": 1, "text": "SECOND"}` signed one of the texts while a proxy, a log
/// or a reviewer reading the body may see the other. Keys are compared as the decoder compares them: after
/// unescaping (`"text"` and `"\u0074ext"` are one key) and as Swift strings (canonically equivalent
/// spellings are one key).
enum StrictJSON {
    /// Objects and arrays inside one another, at most. Every body of this API is two levels deep.
    static let maxDepth = 32

    /// Throws a 400 that says what is wrong (a repeated key, too deep, not JSON and where).
    static func check(_ bytes: [UInt8]) throws(Problem) {
        var scanner = Scanner(bytes: bytes)
        do throws(Failure) {
            scanner.skipSpace()
            try scanner.value(depth: 0)
            scanner.skipSpace()
            guard scanner.at == bytes.count else { throw Failure.malformed(scanner.at) }
        } catch {
            switch error {
            case .duplicate(let key):
                throw Problem.badRequest("the JSON body gives \(Self.name(key)) more than once in one object; send each key once")
            case .tooDeep:
                throw Problem.badRequest("the JSON body is nested deeper than \(maxDepth) levels")
            case .malformed(let at):
                throw Problem.badRequest("the JSON body is not valid JSON (at byte \(at))")
            }
        }
    }

    /// How a problem names a key: quoted when it is short printable ASCII, else without its text.
    static func name(_ key: String) -> String {
        key.count <= 40 && key.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) && $0 != "`" }) ? "the key `\(key)`" : "a key"
    }

    enum Failure: Error { case duplicate(String), tooDeep, malformed(Int) }

    struct Scanner {
        let bytes: [UInt8]
        var at = 0

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            guard at < bytes.count, bytes[at] == byte else { throw .malformed(at) }
            at += 1
        }

        /// One value starting at `at` (no space before it).
        mutating func value(depth: Int) throws(Failure) {
            guard at < bytes.count else { throw .malformed(at) }
            switch bytes[at] {
            case UInt8(ascii: "{"): try object(depth: depth + 1)
            case UInt8(ascii: "["): try array(depth: depth + 1)
            case UInt8(ascii: "\""): _ = try string(keepText: false)
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func object(depth: Int) throws(Failure) {
            guard depth <= StrictJSON.maxDepth else { throw .tooDeep }
            at += 1
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return }
            var keys = Set<String>()
            while true {
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw .malformed(at) }
                let key = try string(keepText: true) ?? ""
                guard keys.insert(key).inserted else { throw .duplicate(key) }
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                try value(depth: depth)
                skipSpace()
                guard at < bytes.count else { throw .malformed(at) }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return }
                try expect(UInt8(ascii: ","))
                skipSpace()
            }
        }

        mutating func array(depth: Int) throws(Failure) {
            guard depth <= StrictJSON.maxDepth else { throw .tooDeep }
            at += 1
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return }
            while true {
                try value(depth: depth)
                skipSpace()
                guard at < bytes.count else { throw .malformed(at) }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return }
                try expect(UInt8(ascii: ","))
                skipSpace()
            }
        }

        mutating func literal(_ word: String) throws(Failure) {
            let expected = Array(word.utf8)
            guard at + expected.count <= bytes.count, bytes[at..<at + expected.count].elementsEqual(expected) else { throw .malformed(at) }
            at += expected.count
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func number() throws(Failure) {
            func digits() -> Int {
                let start = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                return at - start
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard at < bytes.count else { throw .malformed(at) }
            if bytes[at] == UInt8(ascii: "0") { at += 1 } else if digits() == 0 { throw .malformed(at) }
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw .malformed(at) }
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
                at += 1
                if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw .malformed(at) }
            }
        }

        /// A string starting at its opening quote; its unescaped text when `keepText` (object keys).
        mutating func string(keepText: Bool) throws(Failure) -> String? {
            at += 1
            var text: [UInt8] = []
            while true {
                guard at < bytes.count else { throw .malformed(at) }
                let byte = bytes[at]
                switch byte {
                case UInt8(ascii: "\""):
                    at += 1
                    guard keepText else { return nil }
                    // Bytes that are not UTF-8 are refused, never compared as U+FFFD (two different keys would match).
                    guard let key = String(validating: text, as: UTF8.self) else { throw .malformed(at) }
                    return key
                case UInt8(ascii: "\\"):
                    at += 1
                    guard at < bytes.count else { throw .malformed(at) }
                    let escaped = bytes[at]
                    at += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escaped)
                    case UInt8(ascii: "b"): text.append(0x08)
                    case UInt8(ascii: "f"): text.append(0x0C)
                    case UInt8(ascii: "n"): text.append(0x0A)
                    case UInt8(ascii: "r"): text.append(0x0D)
                    case UInt8(ascii: "t"): text.append(0x09)
                    case UInt8(ascii: "u"):
                        var unit = try hex4()
                        if (0xD800...0xDBFF).contains(unit), at + 1 < bytes.count,
                           bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") {
                            let mark = at
                            at += 2
                            let low = try hex4()
                            if (0xDC00...0xDFFF).contains(low) {
                                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                at = mark  // not a pair: the next escape is read on its own
                            }
                        }
                        // A lone surrogate stands for itself as U+FFFD (the decoder refuses such a body anyway).
                        text.append(contentsOf: Array(String(Unicode.Scalar(unit) ?? "\u{FFFD}").utf8))
                    default:
                        throw .malformed(at - 1)
                    }
                default:
                    guard byte >= 0x20 else { throw .malformed(at) }  // control characters must be escaped
                    text.append(byte)
                    at += 1
                }
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard at + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16),
                  bytes[at..<at + 4].allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") }) else { throw .malformed(at) }
            at += 4
            return value
        }
    }
}
