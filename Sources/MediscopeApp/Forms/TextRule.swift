import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeJobs
import MediscopeLLM
import MediscopeReport
import MediscopeServer
import MediscopeStore

/// The rules for one field of text a person typed: what it may contain and how long it may be.
///
/// Text that identifies a patient is data, not decoration: a bidi override that shows `BH-1234` as
/// `BH-4321`, or a decomposed `ü` that a search for the composed one cannot find, puts a result on the
/// wrong patient. So every field is strict UTF-8, stored as NFC, and bounded three ways: in bytes (what
/// storage and the network pay), in Unicode scalars (what processing pays) and in characters, i.e.
/// grapheme clusters (what a person sees). docs/api.md ("Text fields") lists each field's limits.
struct TextRule: Sendable {
    enum Kind: Sendable {
        /// Patient ids and search terms: letters, digits, marks, punctuation, symbols and the ASCII space
        /// only. Refused: every control (C0, DEL, C1), format character (bidi controls, zero-width
        /// characters, soft hyphen), default-ignorable (invisible) character, line and paragraph
        /// separator, other space, private-use and unassigned code point.
        case identifier
        /// One line of free text (a name, a body part): refused are controls and bidi controls.
        case line
        /// Several lines of free text (a note): as `line`, but line feed and tab are kept; CR LF and
        /// a lone CR become LF.
        case lines
    }
    var kind: Kind
    var maxCharacters: Int
    var maxScalars: Int
    var maxBytes: Int

    static let patientId = TextRule(kind: .identifier, maxCharacters: 64, maxScalars: 128, maxBytes: 256)
    static let patientName = TextRule(kind: .line, maxCharacters: 200, maxScalars: 400, maxBytes: 800)
    static let bodyPart = TextRule(kind: .line, maxCharacters: 64, maxScalars: 128, maxBytes: 256)
    static let note = TextRule(kind: .lines, maxCharacters: 4000, maxScalars: 8000, maxBytes: 16000)
    /// Short coded values (age, sex, modality): identifiers, then checked against their own lists.
    static let code = TextRule(kind: .identifier, maxCharacters: 16, maxScalars: 16, maxBytes: 64)
}

extension TextRule {
    /// A report's text: several lines, up to about ten pages.
    static let report = TextRule(kind: .lines, maxCharacters: 20_000, maxScalars: 40_000, maxBytes: 80_000)
}
