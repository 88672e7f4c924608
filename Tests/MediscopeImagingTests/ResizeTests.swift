import Testing
import MediscopeImaging

@Suite("Resize and convert match Pillow 9.4")
struct ResizeTests {
    static func parse(_ resizeCase: String) -> (FixtureIndex.Source, FixtureIndex.Resize) {
        let parts = resizeCase.split(separator: "|")
        let source = Fixtures.source(String(parts[0]))
        let size = parts[1].split(separator: "x").map { Int($0)! }
        return (source, source.resizes.first { $0.width == size[0] && $0.height == size[1] }!)
    }

    @Test("resized(...) from Pillow's own RGB equals .resize((W, H))", arguments: Fixtures.resizeCases)
    func resizeParity(resizeCase: String) throws {
        let (source, target) = Self.parse(resizeCase)
        // Start from Pillow's decoded RGB where stored, so only the resampler is compared.
        let input: PixelImage
        if let rgb = source.rgb {
            input = PixelImage(width: source.width, height: source.height, channels: 3, pixels: Fixtures.bytes(rgb))
        } else {
            input = try ImageDecoder.decode(Fixtures.bytes(source.file)).converted(toChannels: 3)
        }
        let output = input.resized(width: target.width, height: target.height)
        #expect(output.width == target.width && output.height == target.height && output.channels == 3)
        let diff = Difference(output.pixels, Fixtures.bytes(target.rgb))
        print("resize \(resizeCase): \(diff)")
        #expect(diff.maxDiff <= 1, "\(resizeCase): \(diff)")
        #expect(diff.differing == 0, "\(resizeCase): \(diff)")
    }

    @Test("end to end: our decode + convert + resize vs Pillow's", arguments: Fixtures.resizeCases)
    func endToEndParity(resizeCase: String) throws {
        let (source, target) = Self.parse(resizeCase)
        let output = try ImageDecoder.decode(Fixtures.bytes(source.file))
            .converted(toChannels: 3)
            .resized(width: target.width, height: target.height)
        let diff = Difference(output.pixels, Fixtures.bytes(target.rgb))
        #expect(diff.maxDiff <= 1, "\(resizeCase): \(diff)")
    }

    @Test("RGBA resizes premultiplied like Pillow", arguments: Fixtures.index.rgba_resizes.map(\.rgba))
    func rgbaResizeParity(file: String) throws {
        let ref = Fixtures.index.rgba_resizes.first { $0.rgba == file }!
        let image = try ImageDecoder.decode(Fixtures.bytes(ref.source))
        #expect(image.channels == 4)
        let diff = Difference(image.resized(width: ref.width, height: ref.height).pixels, Fixtures.bytes(file))
        print("resize RGBA \(file): \(diff)")
        #expect(diff.maxDiff <= 1, "\(file): \(diff)")
        #expect(diff.differing == 0, "\(file): \(diff)")
    }

    @Test("1-channel resize equals the 3-channel path channel by channel")
    func grayResizeMatchesRGBPath() throws {
        // Resampling is per channel, so resizing gray replicated to RGB must equal resizing
        // the 1-channel image and replicating afterwards.
        let gray = try ImageDecoder.decode(Fixtures.bytes("gray8.png"))
        #expect(gray.channels == 1)
        for (w, h) in [(17, 29), (79, 59), (8, 8)] {
            let viaRGB = gray.converted(toChannels: 3).resized(width: w, height: h)
            let direct = gray.resized(width: w, height: h).converted(toChannels: 3)
            #expect(viaRGB == direct, "\(w)x\(h)")
        }
    }

    @Test("same size returns the image unchanged")
    func identity() throws {
        let image = try ImageDecoder.decode(Fixtures.bytes("rgb.png"))
        #expect(image.resized(width: image.width, height: image.height) == image)
    }

    @Test("convert('L') equals Pillow's ITU-R 601-2 integer luma", arguments: Fixtures.decodableSources)
    func grayParity(file: String) {
        let source = Fixtures.source(file)
        let rgb = PixelImage(width: source.width, height: source.height, channels: 3, pixels: Fixtures.bytes(source.rgb!))
        let gray = rgb.converted(toChannels: 1)
        #expect(gray.channels == 1)
        #expect(gray.pixels == Fixtures.bytes(source.gray!), "\(Difference(gray.pixels, Fixtures.bytes(source.gray!)))")
    }

    @Test("channel conversions: replicate, drop alpha, opaque alpha")
    func conversions() {
        let rgba = PixelImage(width: 2, height: 1, channels: 4, pixels: [10, 20, 30, 40, 255, 0, 0, 0])
        #expect(rgba.converted(toChannels: 3).pixels == [10, 20, 30, 255, 0, 0])
        // (10*19595 + 20*38470 + 30*7471 + 32768) >> 16 = 18; pure red -> 76
        #expect(rgba.converted(toChannels: 1).pixels == [18, 76])
        let gray = PixelImage(width: 2, height: 1, channels: 1, pixels: [7, 200])
        #expect(gray.converted(toChannels: 3).pixels == [7, 7, 7, 200, 200, 200])
        #expect(gray.converted(toChannels: 4).pixels == [7, 7, 7, 255, 200, 200, 200, 255])
        #expect(gray.converted(toChannels: 3).converted(toChannels: 1) == gray)
        #expect(PixelImage(width: 1, height: 1, channels: 3, pixels: [1, 2, 3]).converted(toChannels: 4).pixels == [1, 2, 3, 255])
    }
}
