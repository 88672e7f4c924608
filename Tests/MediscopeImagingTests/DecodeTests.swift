import Testing
import MediscopeImaging

@Suite("Decoding matches Pillow 9.4")
struct DecodeTests {
    @Test("decode(...).converted(toChannels: 3) equals Image.open(p).convert('RGB')",
          arguments: Fixtures.decodableSources)
    func decodeParity(file: String) throws {
        let source = Fixtures.source(file)
        let image = try ImageDecoder.decode(Fixtures.bytes(file))
        #expect(image.width == source.width)
        #expect(image.height == source.height)
        #expect(image.channels == source.decodedChannels, "\(file) is Pillow mode \(source.pillowMode)")
        let diff = Difference(image.converted(toChannels: 3).pixels, Fixtures.bytes(source.rgb!))
        print("decode \(file): \(diff)")
        #expect(diff.maxDiff <= 1, "\(file): \(diff)")
        #expect(diff.differing * 100 <= diff.total, "\(file): too many off-by-one values: \(diff)")
    }

    @Test("sniff uses magic bytes only")
    func sniffing() throws {
        #expect(ImageDecoder.sniff(Fixtures.bytes("rgb_baseline.jpg")) == .jpeg)
        #expect(ImageDecoder.sniff(Fixtures.bytes("rgb.png")) == .png)
        let webp = try ImageEncoder.webp(PixelImage(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 12)))
        #expect(ImageDecoder.sniff(webp) == .webp)
        #expect(ImageDecoder.sniff(Fixtures.bytes("bad_text.jpg")) == nil)
        #expect(ImageDecoder.sniff(Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8)) == nil)
        #expect(ImageDecoder.sniff([]) == nil)
        #expect(ImageDecoder.sniff([0xFF, 0xD8]) == nil)
    }

    @Test("16-bit gray keeps the high byte (Pillow would clip mode I at 255)")
    func gray16HighByte() throws {
        let image = try ImageDecoder.decode(Fixtures.bytes("gray16.png"))
        #expect(image.channels == 1)
        // The fixture's samples are v * 257 + x, so the high byte is v for every x < 256.
        #expect(image.pixels == Fixtures.bytes("gray16.l"))
        #expect(image.pixels.contains { $0 < 128 }, "values were clipped/saturated")
    }

    @Test("alpha survives: RGBA and palette+tRNS decode to 4 channels with the right alpha")
    func alphaChannels() throws {
        let rgba = try ImageDecoder.decode(Fixtures.bytes("rgba.png"))
        #expect(rgba.channels == 4)
        #expect(Set(stride(from: 3, to: rgba.pixels.count, by: 4).map { rgba.pixels[$0] }).count > 10)
        let palette = try ImageDecoder.decode(Fixtures.bytes("palette_trns.png"))
        #expect(palette.channels == 4)
        let alphas = Set(stride(from: 3, to: palette.pixels.count, by: 4).map { palette.pixels[$0] })
        #expect(alphas.isSubset(of: [0, 128, 255, 30]) && alphas.count >= 2, "alphas \(alphas)")
    }

    @Test("concurrent decodes give identical results (no shared codec state)")
    func concurrentDecodes() async throws {
        let files = ["rgb_baseline.jpg", "progressive.jpg", "cmyk_adobe.jpg", "interlaced.png", "palette_trns.png"]
        let expected = try files.map { try ImageDecoder.decode(Fixtures.bytes($0)) }
        let results = try await withThrowingTaskGroup(of: (Int, PixelImage, Bool).self) { group in
            for _ in 0..<8 {
                for (i, file) in files.enumerated() {
                    let bytes = Fixtures.bytes(file)
                    group.addTask {
                        // Interleave failing decodes so error paths run concurrently too.
                        let failed = decodeError(Array(bytes.prefix(bytes.count / 2))) != nil
                        return (i, try ImageDecoder.decode(bytes), failed)
                    }
                }
            }
            var all: [(Int, PixelImage, Bool)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 8 * files.count)
        for (i, image, failed) in results {
            #expect(image == expected[i])
            #expect(failed, "truncated \(files[i]) decoded without error")
        }
    }
}
