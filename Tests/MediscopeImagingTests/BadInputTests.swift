import Testing
import MediscopeImaging

@Suite("Bad inputs are refused with a kind and a message")
struct BadInputTests {
    @Test func empty() {
        let error = decodeError([])
        #expect(error?.kind == .empty)
    }

    @Test("text bytes named .jpg are not sniffed as JPEG")
    func textNamedJPEG() {
        let error = decodeError(Fixtures.bytes("bad_text.jpg"))
        #expect(error?.kind == .unsupportedFormat)
        #expect(error?.message.contains("not a JPEG, PNG, WebP or DICOM") == true, "\(String(describing: error))")
    }

    @Test("truncated JPEG (libjpeg would only warn and fill grey) is corrupt",
          arguments: ["bad_truncated.jpg", "bad_truncated_progressive.jpg"])
    func truncatedJPEG(file: String) {
        let error = decodeError(Fixtures.bytes(file))
        #expect(error?.kind == .corrupt)
        #expect(error?.message.contains("truncated") == true, "\(String(describing: error))")
    }

    @Test("JPEG cut at every 10% is refused, never crashes")
    func truncatedEverywhere() {
        let full = Fixtures.bytes("progressive.jpg")
        for tenth in 1..<10 {
            let error = decodeError(Array(full.prefix(full.count * tenth / 10)))
            #expect(error?.kind == .corrupt, "cut at \(tenth)0%: \(String(describing: error))")
        }
    }

    @Test("PNG with a flipped CRC byte is corrupt", arguments: ["bad_crc_idat.png", "bad_crc_ihdr.png"])
    func badCRC(file: String) {
        let error = decodeError(Fixtures.bytes(file))
        #expect(error?.kind == .corrupt)
        #expect(error?.message.contains("CRC") == true, "\(String(describing: error))")
    }

    @Test func truncatedPNG() {
        let error = decodeError(Fixtures.bytes("bad_truncated.png"))
        #expect(error?.kind == .corrupt)
    }

    @Test("headers claiming 20000x20000 are refused from the header",
          arguments: ["huge_20000.png", "huge_20000.jpg"])
    func hugeHeader(file: String) {
        let error = decodeError(Fixtures.bytes(file))
        #expect(error?.kind == .tooLarge)
        #expect(error?.message.contains("20000x20000 = 400 megapixels, over the limit of 50") == true,
                "\(String(describing: error))")
    }

    @Test("a side over 65535 is refused even under the pixel limit")
    func tooWide() {
        let error = decodeError(Fixtures.bytes("huge_70000x10.png"))
        #expect(error?.kind == .tooLarge)
        #expect(error?.message.contains("70000x10") == true, "\(String(describing: error))")
    }

    @Test("0x0 images are corrupt", arguments: ["zero_0x0.png", "zero_0x0.jpg"])
    func zeroSize(file: String) {
        let error = decodeError(Fixtures.bytes(file))
        #expect(error?.kind == .corrupt, "\(String(describing: error))")
    }

    @Test("maxPixels is honoured exactly", arguments: ["rgb.png", "progressive.jpg"])
    func customLimit(file: String) throws {
        let pixels = 61 * 45
        #expect(decodeError(Fixtures.bytes(file), limits: ImageLimits(maxPixels: pixels - 1))?.kind == .tooLarge)
        let image = try ImageDecoder.decode(Fixtures.bytes(file), limits: ImageLimits(maxPixels: pixels))
        #expect(image.width * image.height == pixels)
    }

    @Test("random garbage after a valid magic number is corrupt, not a crash")
    func garbageAfterMagic() {
        var state: UInt32 = 12345  // fixed LCG so failures reproduce
        for magic in [[UInt8]([0xFF, 0xD8, 0xFF]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
                      Array("RIFF\u{10}\u{0}\u{0}\u{0}WEBP".utf8)] {
            let bytes = magic + (0..<200).map { _ -> UInt8 in
                state = state &* 1_103_515_245 &+ 12345
                return UInt8(truncatingIfNeeded: state >> 16)
            }
            let error = decodeError(bytes)
            #expect(error?.kind == .corrupt, "\(String(describing: error))")
        }
    }
}
