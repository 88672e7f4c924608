import Foundation
import MediscopeServer

enum FieldText {
    /// Checks and normalises `bytes` as the field `field` under `rule`.
    ///
    /// Returns the text trimmed of surrounding white space and in NFC, or nil when nothing is left.
    /// Throws a 400 problem that names the field and, for a refused character, its position (counted
    /// in Unicode scalars from 1, after trimming and NFC) and its Unicode name. Never rewrites the
    /// text beyond trimming, NFC and (for `lines`) line endings: invalid bytes are refused, not replaced.
    static func check(_ bytes: some Collection<UInt8>, field: String, rule: TextRule) throws(Problem) -> String? {
        // Bytes first: the cheapest bound, so that no later step works on a huge value.
        guard bytes.count <= rule.maxBytes * 2 else { throw tooLong(field, rule) }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw Problem.badRequest("`\(field)` is not valid UTF-8 text (invalid bytes at byte offset "
                                     + "\(invalidUTF8Offset(bytes))); send the form as UTF-8")
        }
        // Only ASCII white space is trimmed: an invisible or separator character at either end is refused
        // like anywhere else, never silently dropped.
        var text = decoded.trimmingCharacters(in: CharacterSet(charactersIn: " \t\r\n")).precomposedStringWithCanonicalMapping
        if rule.kind == .lines {
            text = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        }
        if text.isEmpty { return nil }
        guard text.utf8.count <= rule.maxBytes, text.unicodeScalars.count <= rule.maxScalars,
              text.count <= rule.maxCharacters else { throw tooLong(field, rule) }
        if rule.kind == .identifier, let first = text.unicodeScalars.first,
           [.nonspacingMark, .spacingMark, .enclosingMark].contains(first.properties.generalCategory) {
            throw Problem.badRequest("`\(field)` may not start with the combining mark \(codePoint(first)) (character 1)")
        }
        for (index, scalar) in text.unicodeScalars.enumerated() where refuses(scalar, rule.kind) {
            let name = scalar.properties.name ?? scalar.properties.nameAlias ?? describe(scalar)
            throw Problem.badRequest("`\(field)` may not contain \(codePoint(scalar)) \(name) "
                                     + "(character \(index + 1)); \(allowed(rule.kind))")
        }
        return text
    }

    static func refuses(_ scalar: Unicode.Scalar, _ kind: TextRule.Kind) -> Bool {
        let value = scalar.value
        switch kind {
        case .identifier:
            if value == 0x20 { return false }
            // U+FFFD marks text already damaged by a lossy conversion; U+2800 is a blank that shows nothing.
            if value == 0xFFFD || value == 0x2800 || scalar.properties.isNoncharacterCodePoint { return true }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .spaceSeparator,
                 .privateUse, .surrogate, .unassigned:
                return true
            default:
                return scalar.properties.isDefaultIgnorableCodePoint
            }
        case .line, .lines:
            if kind == .lines, value == 0x0A || value == 0x09 { return false }
            return scalar.properties.generalCategory == .control || isBidiControl(scalar)
                || value == 0x2028 || value == 0x2029
        }
    }

    /// Unicode's Bidi_Control property: the marks, embeddings, overrides and isolates.
    static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// What a nameless code point is, for the error message.
    static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar.properties.generalCategory {
        case .control: "a control character"
        case .privateUse: "a private-use character"
        case .unassigned: scalar.properties.isNoncharacterCodePoint ? "a noncharacter" : "an unassigned code point"
        case .surrogate: "a surrogate"
        default: "a character without a name"
        }
    }

    private static func allowed(_ kind: TextRule.Kind) -> String {
        switch kind {
        case .identifier: "identifiers allow letters, digits, marks, punctuation, symbols and spaces only"
        case .line: "controls, bidi controls and line breaks are not allowed here"
        case .lines: "controls other than line feed and tab, and bidi controls, are not allowed here"
        }
    }

    private static func tooLong(_ field: String, _ rule: TextRule) -> Problem {
        Problem.badRequest("`\(field)` is too long: at most \(rule.maxCharacters) characters, \(rule.maxScalars) "
                           + "Unicode scalars and \(rule.maxBytes) bytes of UTF-8")
    }

    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// Byte offset of the first invalid UTF-8 sequence.
    static func invalidUTF8Offset(_ bytes: some Collection<UInt8>) -> Int {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            offset += UTF8.width(scalar)
        }
        return offset
    }
}
