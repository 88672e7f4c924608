import MediscopeEncoding

/// UIDs Mediscope makes for the DICOM objects of an analysis: `2.25.` and the decimal of the first 128 bits
/// of a SHA-256 (PS3.5 B.2, a UUID-derived root), so one analysis, kind and version name one object
/// whichever host writes it and however often it is asked.
package enum DicomUID {
    /// The UID of `kind` ("study", "sr-series", "sr", "sc", ...) of analysis `analysisId`, distinguished by `part`
    /// (the report version, a result id).
    package static func derived(analysisId: String, kind: String, part: String = "") -> String {
        let hex = SHA256Hex.digest(Array("mediscope-dicom-uid\u{0}\(analysisId)\u{0}\(kind)\u{0}\(part)".utf8))
        let value = UInt128(hex.prefix(32), radix: 16) ?? 0
        return "2.25.\(value)"
    }

    /// The Device UID of model `model` (the record keeps its id, not its file's digest).
    package static func device(model: String) -> String {
        derived(analysisId: "", kind: "device", part: model)
    }
}
