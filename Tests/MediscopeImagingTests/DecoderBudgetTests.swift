import CImageCodecs
import Foundation
import Testing
@testable import MediscopeImaging
import ImageTestKit

/// Decode cost is bounded by pixel count: files whose structure asks for more are refused from the
/// structure, before libjpeg or libpng runs (issue 9, section 3). Times are in bench/, not here.
@Suite struct DecoderBudgetTests {
    func decodeError(_ bytes: [UInt8], limits: ImageLimits = .init()) -> ImagingError? {
        do { _ = try ImageDecoder.decode(bytes, limits: limits); return nil } catch { return error }
    }

    @Test func tenThousandScansOfALargeImageAreRefusedFromTheStructure() throws {
        let bomb = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 10_000)
        #expect(bomb.count < 2_000_000)
        let structure = ImageStructure.inspect(bomb, format: .jpeg)
        #expect(structure.jpegScanCount == 10_000 && structure.width == 7071 && structure.jpegFrameMarker == 0xC2)
        let error = try #require(decodeError(bomb))
        #expect(error.kind == .tooComplex)
        #expect(error.message.contains("too many progressive scans") && error.message.contains("10000 scans"))
    }

    @Test func theScanBoundShrinksAsTheImageGrows() throws {
        // 20 passes over 50 megapixels is over the budget (12 passes of the largest image)...
        let big = try #require(decodeError(try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 20)))
        #expect(big.kind == .tooComplex && big.message.contains("at most 12"))
        // ...while a small image may have many scans, up to the fixed bound.
        let small = try ImageBuilders.scanBomb(width: 64, height: 64, scans: 200)
        let image = try ImageDecoder.decode(small)
        #expect(image.width == 64 && image.height == 64)
        let tooMany = try #require(decodeError(try ImageBuilders.scanBomb(width: 64, height: 64, scans: 257)))
        #expect(tooMany.kind == .tooComplex && tooMany.message.contains("at most 256"))
    }

    /// The structure walk and libjpeg could disagree on a crafted file; libjpeg's progress monitor is the
    /// second bound, so the C decoder alone also stops at max_scans.
    @Test func libjpegsProgressMonitorStopsAtMaxScans() throws {
        let progressive = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 40, height: 30), progressive: true)
        #expect(ImageStructure.inspect(progressive, format: .jpeg).jpegScanCount == 6)
        func decode(maxScans: Int32) -> Int32 {
            var image = codec_image()
            var err = [CChar](repeating: 0, count: 256)
            let rc = progressive.withUnsafeBufferPointer { data in
                codec_jpeg_decode(data.baseAddress, data.count, 1 << 30, maxScans, &image, &err, err.count)
            }
            codec_free(image.pixels)
            return rc
        }
        #expect(decode(maxScans: 3) == Int32(CODEC_ERR_TOO_COMPLEX))
        #expect(decode(maxScans: 6) == Int32(CODEC_OK))
    }

    @Test func losslessAndTwelveBitJPEGsAreUnsupportedNotInvalid() throws {
        let baseline = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 16, height: 16), quality: 90)
        let sof = try #require(ImageBuilders.segments(baseline).first { $0.marker == 0xC0 })
        var lossless = baseline
        lossless[sof.start + 1] = 0xC3
        var twelveBit = baseline
        twelveBit[sof.start + 1] = 0xC1
        twelveBit[sof.start + 4] = 12
        for (file, words) in [(lossless, "lossless JPEG (SOF3) is not supported"), (twelveBit, "12-bit JPEG is not supported")] {
            let error = try #require(decodeError(file))
            #expect(error.kind == .unsupportedVariant)
            #expect(error.message.contains(words) && error.message.contains("export"), "\(error.message)")
            #expect(!error.message.contains("invalid"))
            // libjpeg's own refusal maps to the same kind when the structure walk is bypassed.
            var image = codec_image()
            var err = [CChar](repeating: 0, count: 256)
            let rc = file.withUnsafeBufferPointer { codec_jpeg_decode($0.baseAddress, $0.count, 1 << 30, 256, &image, &err, err.count) }
            #expect(rc == Int32(CODEC_ERR_VARIANT))
        }
    }

    @Test func pngTextChunksAreSkippedNotInflated() throws {
        let image = ImageBuilders.pattern(width: 33, height: 17)
        let plain = try ImageEncoder.png(image)
        // 200 zTXt chunks that would each inflate to 4 MiB, and as many iTXt / tEXt / iCCP.
        let bomb = try ImageBuilders.zlibZeros(side: 2048)
        var chunks: [[UInt8]] = []
        for i in 0..<200 {
            chunks.append(ImageBuilders.chunk("zTXt", Array("Comment\(i)".utf8) + [0, 0] + bomb))
            chunks.append(ImageBuilders.chunk("iTXt", Array("Note\(i)".utf8) + [0, 1, 0, 0, 0] + bomb))
            chunks.append(ImageBuilders.chunk("tEXt", Array("Title\(i)".utf8) + [0] + [UInt8](repeating: 0x41, count: 2000)))
        }
        chunks.append(ImageBuilders.chunk("iCCP", Array("icc".utf8) + [0, 0] + bomb))
        let decoded = try ImageDecoder.decode(ImageBuilders.png(plain, inserting: chunks))
        #expect(decoded == image)
    }

    /// Found by review: image data that inflates far past the last row (libpng inflates it all to check
    /// the stream's end) is refused from the chunk lengths alone.
    @Test func pngImageDataLongerThanTheImageNeedsIsRefused() throws {
        let plain = try ImageEncoder.png(ImageBuilders.pattern(width: 16, height: 16))
        let idat = ImageBuilders.chunk("IDAT", try ImageBuilders.zlibZeros(side: 6000))  // ~36 MB inflated, 35 KB stored
        var bomb = Array(plain.prefix(8 + 25))  // signature + IHDR
        bomb += idat + ImageBuilders.chunk("IEND", [])
        let error = try #require(decodeError(bomb))
        #expect(error.kind == .tooComplex && error.message.contains("more than a 16x16 image can need"), "\(error.message)")
        #expect(try ImageDecoder.decode(plain).width == 16, "an ordinary file passes")
    }

    /// Found by review: a stray byte before a marker hid the scans from the walk; libjpeg skips such bytes.
    @Test func strayBytesBeforeAMarkerDoNotHideScans() throws {
        var bomb = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 1000)
        let sos = try #require(ImageBuilders.segments(bomb).first { $0.marker == 0xDA })
        bomb.insert(0x00, at: sos.start)
        #expect(ImageStructure.inspect(bomb, format: .jpeg).jpegScanCount == 1000)
        #expect(decodeError(bomb)?.kind == .tooComplex)
    }

    @Test func aHugeBaselineImageIsTooLargeNotTooManyScans() throws {
        let big = try ImageBuilders.scanBomb(width: 65000, height: 65000, scans: 6)
        let error = try #require(decodeError(big))
        #expect(error.kind == .tooLarge && error.message.contains("megapixels") && !error.message.contains("scans"))
    }

    /// A file's many chunks cost a walk over its bytes, no more: same pixels, one chunk per byte of data.
    @Test func manyTinyIDATChunksDecodeTheSamePixels() throws {
        let image = ImageBuilders.pattern(width: 61, height: 20)
        let plain = try ImageEncoder.png(image)
        let split = ImageBuilders.png(plain, idatChunksOf: 1)
        #expect(split.count > plain.count + 12 * 100)
        #expect(try ImageDecoder.decode(split) == image)
    }
}
