import Foundation
import Testing
@testable import MediscopeImaging
import ImageTestKit

/// EXIF orientation applied as a viewer applies it (issue 9, section 4). The expected pixels are written
/// out from the Exif 2.32 definitions, not computed by the code under test.
@Suite struct OrientationTests {
    /// What a viewer shows: 3 wide, 2 high.
    static let upright: [[UInt8]] = [[10, 20, 30], [40, 50, 60]]
    /// How a camera stores `upright` for each orientation value (Exif 2.32, tag 0x0112: "the 0th row is...").
    static let stored: [Int: [[UInt8]]] = [
        1: [[10, 20, 30], [40, 50, 60]],
        2: [[30, 20, 10], [60, 50, 40]],        // 0th row top, 0th column right
        3: [[60, 50, 40], [30, 20, 10]],        // bottom, right
        4: [[40, 50, 60], [10, 20, 30]],        // bottom, left
        5: [[10, 40], [20, 50], [30, 60]],      // 0th row left, 0th column top
        6: [[30, 60], [20, 50], [10, 40]],      // right, top
        7: [[60, 30], [50, 20], [40, 10]],      // right, bottom
        8: [[40, 10], [50, 20], [60, 30]],      // left, bottom
    ]

    static func image(_ rows: [[UInt8]]) -> PixelImage {
        PixelImage(width: rows[0].count, height: rows.count, channels: 1, pixels: rows.flatMap { $0 })
    }

    @Test(arguments: 1...8)
    func pngWithAnEXIfChunkIsShownUpright(value: Int) throws {
        let file = ImageBuilders.png(try ImageEncoder.png(Self.image(Self.stored[value]!)),
                                     inserting: [ImageBuilders.chunk("eXIf", ImageBuilders.tiff(orientation: value, bigEndian: value % 2 == 0))])
        let decoded = try ImageDecoder.decodeUpright(file)
        #expect(decoded.image == Self.image(Self.upright), "orientation \(value)")
        #expect(decoded.orientation?.rawValue == value && decoded.format == .png)
        // The stored pixels stay available as stored.
        #expect(try ImageDecoder.decode(file) == Self.image(Self.stored[value]!))
    }

    @Test(arguments: [(6, false), (6, true), (8, false), (3, true), (5, false)])
    func jpegWithAnExifSegmentIsShownUpright(value: Int, bigEndian: Bool) throws {
        let plain = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 64, height: 32), quality: 95)
        let oriented = ImageBuilders.jpeg(plain, orientation: value, bigEndian: bigEndian)
        let decoded = try ImageDecoder.decodeUpright(oriented)
        let orientation = try #require(ExifOrientation(rawValue: value))
        #expect(decoded.orientation == orientation)
        #expect(decoded.image == (try ImageDecoder.decode(plain)).applying(orientation))
        #expect((decoded.image.width, decoded.image.height) == (value >= 5 ? (32, 64) : (64, 32)))
    }

    @Test func filesWithoutOrWithBrokenOrientationAreLeftAsStored() throws {
        let plain = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 24, height: 8), quality: 90)
        // An Exif segment whose TIFF structure stops inside IFD0 (the segment length itself is right).
        let cut = Array("Exif".utf8) + [0, 0] + ImageBuilders.tiff(orientation: 6).prefix(20)
        let truncatedExif = [0xFF, 0xD8, 0xFF, 0xE1, 0, UInt8(cut.count + 2)] + cut + plain.dropFirst(2)
        for file in [plain, ImageBuilders.jpeg(plain, orientation: 0), ImageBuilders.jpeg(plain, orientation: 9), truncatedExif] {
            let decoded = try? ImageDecoder.decodeUpright(file)
            #expect(decoded?.orientation == nil)
            #expect(decoded?.image.width == 24)
        }
    }

    @Test func applyingAnOrientationMatchesItsDefinition() {
        for (value, rows) in Self.stored {
            #expect(Self.image(rows).applying(ExifOrientation(rawValue: value)!) == Self.image(Self.upright), "\(value)")
        }
        let rgb = PixelImage(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        #expect(rgb.applying(.rotated90Clockwise) == PixelImage(width: 1, height: 2, channels: 3, pixels: [1, 2, 3, 4, 5, 6]))
        #expect(rgb.applying(.mirrored) == PixelImage(width: 2, height: 1, channels: 3, pixels: [4, 5, 6, 1, 2, 3]))
    }
}
