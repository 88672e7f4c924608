import Foundation

/// Codable values as Firestore maps: a value is encoded with JSONEncoder and its JSON read as Firestore
/// values (objects -> maps, arrays -> arrays, whole numbers -> integers, other numbers -> doubles), and
/// back. So a stored document has typed, queryable fields with the same names as the API's JSON.
package enum FirestoreCoding {
    /// The Firestore value of `value`'s JSON encoding.
    package static func encode<T: Encodable>(_ value: T) throws -> FirestoreValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var parser = JSONToValue(bytes: Array(try encoder.encode(value)))
        return try parser.parse()
    }

    /// Decodes `T` from a Firestore value written by `encode` (or of the same shape).
    package static func decode<T: Decodable>(_ type: T.Type, from value: FirestoreValue) throws -> T {
        var out = ""
        try json(value, into: &out)
        return try JSONDecoder().decode(type, from: Data(out.utf8))
    }

    static func json(_ value: FirestoreValue, into out: inout String) throws {
        switch value {
        case .null: out += "null"
        case .boolean(let b): out += b ? "true" : "false"
        case .integer(let i): out += String(i)
        case .double(let d):
            guard d.isFinite else { throw CodingError("a non-finite double has no JSON form") }
            out += "\(d)"
        case .string(let s), .reference(let s): out += quoted(s)
        case .timestamp(let d): out += quoted(RFC3339.string(d))
        case .bytes(let b): out += quoted(Data(b).base64EncodedString())
        case .geoPoint(let lat, let lon): out += "{\"latitude\":\(lat),\"longitude\":\(lon)}"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                try json(item, into: &out)
            }
            out += "]"
        case .map(let fields):
            out += "{"
            for (i, key) in fields.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                out += quoted(key) + ":"
                try json(fields[key]!, into: &out)
            }
            out += "}"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    struct CodingError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}

/// A small JSON reader that keeps the difference between whole numbers and others (Foundation's
/// JSONSerialization does not say which an NSNumber was).
struct JSONToValue {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parse() throws -> FirestoreValue {
        let v = try value(depth: 0)
        skip()
        guard i == bytes.count else { throw FirestoreCoding.CodingError("trailing bytes after JSON") }
        return v
    }

    mutating func skip() { while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 } }

    mutating func value(depth: Int) throws -> FirestoreValue {
        guard depth < 64 else { throw FirestoreCoding.CodingError("JSON nested too deeply") }
        skip()
        guard i < bytes.count else { throw FirestoreCoding.CodingError("JSON ends early") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var fields: [String: FirestoreValue] = [:]
            skip()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .map(fields) }
            while true {
                skip()
                guard case .string(let key) = try value(depth: depth + 1) else { throw FirestoreCoding.CodingError("object key is not a string") }
                skip()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw FirestoreCoding.CodingError("':' expected") }
                i += 1
                fields[key] = try value(depth: depth + 1)
                skip()
                guard i < bytes.count else { throw FirestoreCoding.CodingError("JSON ends early") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                guard bytes[i] == UInt8(ascii: "}") else { throw FirestoreCoding.CodingError("',' or '}' expected") }
                i += 1
                return .map(fields)
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [FirestoreValue] = []
            skip()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skip()
                guard i < bytes.count else { throw FirestoreCoding.CodingError("JSON ends early") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                guard bytes[i] == UInt8(ascii: "]") else { throw FirestoreCoding.CodingError("',' or ']' expected") }
                i += 1
                return .array(items)
            }
        case UInt8(ascii: "\""):
            let start = i
            i += 1
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
            guard i < bytes.count else { throw FirestoreCoding.CodingError("unterminated string") }
            i += 1
            // JSONDecoder reads the quoted text with all its escapes.
            let text = try JSONDecoder().decode(String.self, from: Data(bytes[start..<i]))
            return .string(text)
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            for (word, v) in [("true", FirestoreValue.boolean(true)), ("false", .boolean(false)), ("null", .null)]
            where bytes[i...].starts(with: Array(word.utf8)) {
                i += word.utf8.count
                return v
            }
            throw FirestoreCoding.CodingError("unknown literal")
        default:
            let start = i
            while i < bytes.count, "+-0123456789.eE".utf8.contains(bytes[i]) { i += 1 }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if !text.contains(where: { ".eE".contains($0) }), let whole = Int64(text) { return .integer(whole) }
            guard let d = Double(text) else { throw FirestoreCoding.CodingError("bad number \(text.prefix(20))") }
            return .double(d)
        }
    }
}
