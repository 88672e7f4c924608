import Testing
import MediscopeImaging

@Suite("Encoders")
struct EncodeTests {
    static func sample(channels: Int) throws -> PixelImage {
        let image = try ImageDecoder.decode(Fixtures.bytes("rgba.png"))  // 61x45 RGBA
        return image.converted(toChannels: channels)
    }

    /// Smooth photo-like content for lossy codecs (4:2:0 JPEG would smear per-channel noise).
    static func smooth(channels: Int) -> PixelImage {
        let w = 64, h = 48
        var px = [UInt8]()
        for y in 0..<h {
            for x in 0..<w {
                px += [UInt8(x * 4), UInt8(y * 5), UInt8(128 + (x - y) / 2), UInt8(255 - x * 2)]
            }
        }
        return PixelImage(width: w, height: h, channels: 4, pixels: px).converted(toChannels: channels)
    }

    static func meanAbsDiff(_ a: [UInt8], _ b: [UInt8]) -> Double {
        Double(zip(a, b).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(a.count)
    }

    @Test("PNG round trip is lossless", arguments: [1, 3, 4])
    func pngRoundTrip(channels: Int) throws {
        let image = try Self.sample(channels: channels)
        let encoded = try ImageEncoder.png(image)
        #expect(ImageDecoder.sniff(encoded) == .png)
        #expect(try ImageDecoder.decode(encoded) == image)
    }

    @Test("JPEG round trip is close; gray stays gray; alpha is dropped", arguments: [1, 3, 4])
    func jpegRoundTrip(channels: Int) throws {
        let image = Self.smooth(channels: channels)
        let encoded = try ImageEncoder.jpeg(image, quality: 95)
        #expect(Array(encoded.prefix(3)) == [0xFF, 0xD8, 0xFF])
        try Self.expectDecodesClose(encoded, to: image, channels: channels == 1 ? 1 : 3, meanAbsDiff: 2)
    }

    /// The pipeline stores a gray scan as a one-channel JPEG: it must show exactly what the RGB JPEG
    /// of the same pixels shows (Y is the gray value, Cb = Cr = 128 decode to no colour), at the scan's
    /// quality and at odd sizes that leave partial 16x16 blocks.
    @Test("a gray JPEG decodes to the pixels of the RGB JPEG of the same image", arguments: [88, 95])
    func grayJPEGShowsWhatRGBShows(quality: Int) throws {
        for gray in [try Self.sample(channels: 1), Self.smooth(channels: 1)] {
            let rgb = gray.converted(toChannels: 3)
            let fromGray = try ImageDecoder.decode(try ImageEncoder.jpeg(gray, quality: quality))
            let fromRGB = try ImageDecoder.decode(try ImageEncoder.jpeg(rgb, quality: quality))
            #expect(fromGray.channels == 1 && fromRGB.channels == 3)
            #expect(fromGray.converted(toChannels: 3) == fromRGB)
        }
    }

    /// `encoded` decodes to `image`'s size with `channels`, each sample within `meanAbsDiff` on average.
    static func expectDecodesClose(_ encoded: [UInt8], to image: PixelImage, channels: Int, meanAbsDiff limit: Double) throws {
        let decoded = try ImageDecoder.decode(encoded)
        #expect(decoded.width == image.width && decoded.height == image.height && decoded.channels == channels)
        let mean = meanAbsDiff(decoded.pixels, image.converted(toChannels: decoded.channels).pixels)
        #expect(mean < limit, "mean abs diff \(mean)")
    }

    @Test("JPEG quality changes the size")
    func jpegQuality() throws {
        let image = try Self.sample(channels: 3)
        #expect(try ImageEncoder.jpeg(image, quality: 30).count < ImageEncoder.jpeg(image, quality: 95).count)
    }

    @Test("WebP has a RIFF/WEBP header whose size matches, and decodes close", arguments: [1, 3, 4])
    func webp(channels: Int) throws {
        let image = Self.smooth(channels: channels)
        let encoded = try ImageEncoder.webp(image, quality: 90)
        #expect(Array(encoded[0..<4]) == Array("RIFF".utf8))
        #expect(Array(encoded[8..<12]) == Array("WEBP".utf8))
        let riffSize = Int(encoded[4]) | Int(encoded[5]) << 8 | Int(encoded[6]) << 16 | Int(encoded[7]) << 24
        #expect(riffSize + 8 == encoded.count)
        try Self.expectDecodesClose(encoded, to: image, channels: channels == 4 ? 4 : 3, meanAbsDiff: 3)
    }

    @Test("a pixel buffer that does not match the size is refused, not read out of bounds")
    func mismatchedBuffer() {
        var image = PixelImage(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: 0, count: 48))
        image.pixels.removeLast(5)
        #expect(throws: ImagingError.self) { try ImageEncoder.png(image) }
        do {
            _ = try ImageEncoder.jpeg(image)
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .encodeFailed)
        }
    }
}
