import Foundation
import MediscopeEncoding

/// A Firestore value as the REST API v1 writes it (`Value` in google.firestore.v1): one key naming the
/// type. `integerValue` travels as a decimal string, `timestampValue` as RFC 3339 UTC, `bytesValue`
/// as standard base64; `doubleValue` may be a number or "NaN" / "Infinity" / "-Infinity".
package indirect enum FirestoreValue: Sendable, Equatable {
    case null
    case boolean(Bool)
    case integer(Int64)
    case double(Double)
    /// Microsecond precision in Firestore; this type keeps what `Date` holds.
    case timestamp(Date)
    case string(String)
    case bytes([UInt8])
    /// A document's full resource name.
    case reference(String)
    case geoPoint(latitude: Double, longitude: Double)
    case array([FirestoreValue])
    case map([String: FirestoreValue])
}

extension FirestoreValue: Codable {
    enum Key: String, CodingKey {
        case nullValue, booleanValue, integerValue, doubleValue, timestampValue, stringValue, bytesValue
        case referenceValue, geoPointValue, arrayValue, mapValue
    }
    struct ArrayBody: Codable { var values: [FirestoreValue]? }
    struct MapBody: Codable { var fields: [String: FirestoreValue]? }
    struct GeoPoint: Codable { var latitude: Double?; var longitude: Double? }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        guard let key = c.allKeys.first, c.allKeys.count == 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a Value has exactly one type key"))
        }
        func corrupt(_ what: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: decoder.codingPath + [key], debugDescription: what))
        }
        switch key {
        case .nullValue: self = .null
        case .booleanValue: self = .boolean(try c.decode(Bool.self, forKey: key))
        case .integerValue:
            // A string by the spec; a bare number is read too.
            if let text = try? c.decode(String.self, forKey: key) {
                guard let v = Int64(text) else { throw corrupt("integerValue \(text.prefix(30)) is not a 64-bit integer") }
                self = .integer(v)
            } else {
                self = .integer(try c.decode(Int64.self, forKey: key))
            }
        case .doubleValue:
            if let text = try? c.decode(String.self, forKey: key) {
                switch text {
                case "NaN": self = .double(.nan)
                case "Infinity": self = .double(.infinity)
                case "-Infinity": self = .double(-.infinity)
                default: throw corrupt("doubleValue \(text.prefix(30)) is not a number")
                }
            } else {
                self = .double(try c.decode(Double.self, forKey: key))
            }
        case .timestampValue:
            let text = try c.decode(String.self, forKey: key)
            guard let date = RFC3339.date(text) else { throw corrupt("timestampValue \(text.prefix(40)) is not RFC 3339") }
            self = .timestamp(date)
        case .stringValue: self = .string(try c.decode(String.self, forKey: key))
        case .bytesValue:
            let text = try c.decode(String.self, forKey: key)
            guard let data = Data(base64Encoded: text) else { throw corrupt("bytesValue is not base64") }
            self = .bytes([UInt8](data))
        case .referenceValue: self = .reference(try c.decode(String.self, forKey: key))
        case .geoPointValue:
            let p = try c.decode(GeoPoint.self, forKey: key)
            self = .geoPoint(latitude: p.latitude ?? 0, longitude: p.longitude ?? 0)
        case .arrayValue: self = .array(try c.decode(ArrayBody.self, forKey: key).values ?? [])
        case .mapValue: self = .map(try c.decode(MapBody.self, forKey: key).fields ?? [:])
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .null: try c.encodeNil(forKey: .nullValue)
        case .boolean(let v): try c.encode(v, forKey: .booleanValue)
        case .integer(let v): try c.encode(String(v), forKey: .integerValue)
        case .double(let v):
            if v.isNaN { try c.encode("NaN", forKey: .doubleValue) }
            else if v.isInfinite { try c.encode(v > 0 ? "Infinity" : "-Infinity", forKey: .doubleValue) }
            else { try c.encode(v, forKey: .doubleValue) }
        case .timestamp(let d): try c.encode(RFC3339.string(d), forKey: .timestampValue)
        case .string(let v): try c.encode(v, forKey: .stringValue)
        case .bytes(let v): try c.encode(Data(v).base64EncodedString(), forKey: .bytesValue)
        case .reference(let v): try c.encode(v, forKey: .referenceValue)
        case .geoPoint(let lat, let lon): try c.encode(GeoPoint(latitude: lat, longitude: lon), forKey: .geoPointValue)
        case .array(let v): try c.encode(ArrayBody(values: v), forKey: .arrayValue)
        case .map(let v): try c.encode(MapBody(fields: v), forKey: .mapValue)
        }
    }
}

/// A document: its full resource name (`projects/P/databases/D/documents/collection/id`) and fields.
package struct FirestoreDocument: Codable, Sendable, Equatable {
    package var name: String
    package var fields: [String: FirestoreValue]
    /// Set by Firestore (RFC 3339); nil in a document we are about to write.
    package var createTime: String?
    package var updateTime: String?

    package init(name: String, fields: [String: FirestoreValue]) {
        self.name = name; self.fields = fields
    }

    enum CodingKeys: String, CodingKey { case name, fields, createTime, updateTime }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        fields = try c.decodeIfPresent([String: FirestoreValue].self, forKey: .fields) ?? [:]
        createTime = try c.decodeIfPresent(String.self, forKey: .createTime)
        updateTime = try c.decodeIfPresent(String.self, forKey: .updateTime)
    }

    /// The last path segment: the document id.
    package var id: String { String(name.split(separator: "/").last ?? "") }
}

/// RFC 3339 in UTC with up to nanosecond fractions, as Firestore writes timestamps.
enum RFC3339 {
    static func string(_ date: Date) -> String {
        let (q, r) = date.millisecondsSince1970.quotientAndRemainder(dividingBy: 1000)
        let (seconds, millis) = r < 0 ? (q - 1, r + 1000) : (q, r)  // floor, for dates before 1970
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(millis))
    }

    static func date(_ text: String) -> Date? {
        // YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)
        let utf8 = Array(text.utf8)
        guard utf8.count >= 20 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= utf8.count else { return nil }
            var v = 0
            for i in range {
                guard (48...57).contains(utf8[i]) else { return nil }
                v = v * 10 + Int(utf8[i] - 48)
            }
            return v
        }
        guard let year = number(0..<4), utf8[4] == 45, let month = number(5..<7), utf8[7] == 45, let day = number(8..<10),
              utf8[10] == 84 || utf8[10] == 116, let hour = number(11..<13), utf8[13] == 58, let minute = number(14..<16),
              utf8[16] == 58, let second = number(17..<19) else { return nil }
        var i = 19
        var fraction = 0.0
        if i < utf8.count, utf8[i] == 46 {
            i += 1
            var scale = 0.1
            let start = i
            while i < utf8.count, (48...57).contains(utf8[i]) { fraction += Double(utf8[i] - 48) * scale; scale /= 10; i += 1 }
            guard i > start else { return nil }
        }
        var offset = 0
        guard i < utf8.count else { return nil }
        switch utf8[i] {
        case 90, 122: guard i + 1 == utf8.count else { return nil }
        case 43, 45:
            guard let oh = number((i + 1)..<(i + 3)), utf8.count == i + 6, utf8[i + 3] == 58, let om = number((i + 4)..<(i + 6)) else { return nil }
            offset = (oh * 60 + om) * 60 * (utf8[i] == 45 ? -1 : 1)
        default: return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900); parts.tm_mon = Int32(month - 1); parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour); parts.tm_min = Int32(minute); parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch - offset) + fraction)
    }
}
