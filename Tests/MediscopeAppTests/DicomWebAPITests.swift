import Testing
@testable import MediscopeApp

/// STOW-RS's content negotiation and the text of its Warning header fields.
@Suite struct DicomWebAPITests {
    /// RFC 9110 12.5.1: the most specific range that names the response's type decides, and q=0 refuses.
    @Test(arguments: [
        ("application/dicom+json", true), ("application/json", true), ("*/*", true), ("application/*;q=0.5", true),
        ("text/html, */*;q=0.1", true), ("application/dicom+json;q=0", false), ("*/*;q=0", false),
        ("application/dicom+json;q=0, */*", false), ("application/*;q=0, application/dicom+json", true),
        ("application/json;q=0, application/*", false), ("text/html", false), ("application/dicom+xml", false),
        (" APPLICATION/DICOM+JSON ; Q=0.0 ", false), ("application/dicom+json;q=x", true), ("", false),
    ])
    func acceptDecidesByTheMostSpecificRange(accept: String, acceptable: Bool) {
        #expect(DicomWebAPI.accepts(accept) == acceptable, "\(accept)")
    }

    /// A reason becomes a quoted-string's content: a CR, a quote or a backslash from a part's header never
    /// reaches the response's header block.
    @Test func aWarningsTextIsPrintableASCIIWithoutQuotes() {
        #expect(DicomWebAPI.quotable("the part is not application/dicom") == "the part is not application/dicom")
        #expect(DicomWebAPI.quotable("base64\r\nSet-Cookie: x=\"1\"\\é") == "base64??Set-Cookie: x=?1???")
    }
}
