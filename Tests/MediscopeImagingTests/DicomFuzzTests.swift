import Foundation
import Testing
@testable import MediscopeImaging
import ImageTestKit

/// Thousands of random corruptions of real files (Debian's python3-pydicom test files): every one is
/// rendered or refused with an `ImagingError` that has a message; nothing crashes or hangs.
@Suite struct DicomFuzzTests {
    static let folder = "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
    static let seeds = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm",
                        "image_dfl.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "CT_small.dcm",
                        "SC_rgb_rle_2frame.dcm", "nested_priv_SQ.dcm"]

    /// xorshift64*: the same corruptions on every run.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 2685821657736338717
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static func corrupt(_ original: [UInt8], _ r: inout Random) -> [UInt8] {
        var b = original
        switch r.below(6) {
        case 0:  // a few random bytes, mostly in the header and the first elements
            for _ in 0..<(1 + r.below(8)) {
                let i = r.below(4) == 0 ? r.below(b.count) : r.below(min(b.count, 1024))
                b[i] = UInt8(truncatingIfNeeded: r.next())
            }
        case 1:  // truncated
            b = Array(b.prefix(r.below(b.count)))
        case 2:  // a 16- or 32-bit length field replaced with an extreme value
            let i = r.below(max(1, b.count - 4))
            let v: [UInt8] = [[0xFF, 0xFF, 0xFF, 0xFF], [0xFE, 0xFF, 0xFF, 0x7F], [0, 0, 0, 0], [0xFF, 0xFF, 0, 0]][r.below(4)]
            for k in 0..<4 where i + k < b.count { b[i + k] = v[k] }
        case 3:  // a run of bytes deleted
            let i = r.below(b.count), n = min(b.count - i, 1 + r.below(64))
            b.removeSubrange(i..<(i + n))
        case 4:  // item and delimiter tags sprinkled in (nesting, premature ends)
            for _ in 0..<(1 + r.below(16)) {
                let i = r.below(max(1, b.count - 8))
                let tag: [UInt8] = [[0xFE, 0xFF, 0x00, 0xE0], [0xFE, 0xFF, 0xDD, 0xE0], [0xFE, 0xFF, 0x0D, 0xE0]][r.below(3)]
                for k in 0..<4 { b[i + k] = tag[k] }
            }
        default:  // the pixel data's end scrambled
            for _ in 0..<32 { b[b.count - 1 - r.below(min(b.count, 4096))] = UInt8(truncatingIfNeeded: r.next()) }
        }
        return b
    }

    @Test(arguments: seeds)
    func corruptedFilesAreRenderedOrRefusedClearly(_ name: String) throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.folder + name)))
        // Seeded from the name (FNV-1a), so every run makes the same corruptions.
        var r = Random(state: name.utf8.reduce(UInt64(0xCBF29CE484222325)) { ($0 ^ UInt64($1)) &* 0x100000001B3 })
        var refused = 0
        for _ in 0..<400 {
            let bytes = Self.corrupt(original, &r)
            do {
                let (image, _) = try DicomRenderer.decode(bytes)
                #expect(image.pixels.count == image.width * image.height * image.channels)
            } catch {
                refused += 1
                #expect(!error.message.isEmpty)
                #expect(error.kind != .encodeFailed)
            }
        }
        #expect(refused > 0)
    }

    @Test func deepNestingIsRefusedBeforeDCMTKReadsIt() throws {
        // 40 nested sequences of undefined length, each holding one item with the next sequence.
        var body: [UInt8] = []
        for _ in 0..<40 { body += [0x08, 0x00, 0x15, 0x11, 0x53, 0x51, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF] }
        for _ in 0..<40 { body += [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0] }
        var file = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        let ts = Array("1.2.840.10008.1.2.1".utf8) + [0]
        file += [0x02, 0x00, 0x10, 0x00, 0x55, 0x49, UInt8(ts.count), 0] + ts + body
        do {
            _ = try DicomFile.read(file)
            Issue.record("40 nested sequences were read")
        } catch {
            #expect(error.kind == .tooComplex && error.message.contains("16 levels"))
        }
    }

    @Test func anElementLongerThanTheFileIsRefusedBeforeAllocation() throws {
        var file = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        let ts = Array("1.2.840.10008.1.2.1".utf8) + [0]
        file += [0x02, 0x00, 0x10, 0x00, 0x55, 0x49, UInt8(ts.count), 0] + ts
        file += [0xE0, 0x7F, 0x10, 0x00, 0x4F, 0x57, 0, 0, 0xF0, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]
        do {
            _ = try DicomFile.read(file)
            Issue.record("a 4 GB element in a small file was read")
        } catch {
            #expect(error.kind == .corrupt && error.message.contains("longer than the data left"))
        }
    }

    /// Found by review: DCMTK decodes JPEG fragments with its own IJG copy, past the upload's scan bound.
    /// The same 10,000-scan JPEG inside a DICOM file is refused from its structure, like the .jpg.
    @Test func aScanBombInsideADicomFileIsRefusedLikeAJPEG() throws {
        let fragment = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 10_000)
        var file = DicomBuilder.file([
            .text(0x0008, 0x0060, "CS", "MR"), .us(0x0028, 0x0002, 1), .text(0x0028, 0x0004, "CS", "MONOCHROME2"),
            .us(0x0028, 0x0010, 7071), .us(0x0028, 0x0011, 7071), .us(0x0028, 0x0100, 8), .us(0x0028, 0x0101, 8),
            .us(0x0028, 0x0102, 7), .us(0x0028, 0x0103, 0),
        ], transferSyntax: "1.2.840.10008.1.2.4.50")
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        let padded = fragment.count % 2 == 0 ? fragment : fragment + [0]
        // Encapsulated Pixel Data (PS3.5 A.4): undefined length, an empty offset table, one fragment, the delimiter.
        file += [0xE0, 0x7F, 0x10, 0x00] + Array("OB".utf8) + [0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        file += [0xFE, 0xFF, 0x00, 0xE0] + le32(0) + [0xFE, 0xFF, 0x00, 0xE0] + le32(padded.count) + padded
        file += [0xFE, 0xFF, 0xDD, 0xE0] + le32(0)
        do {
            _ = try DicomRenderer.decode(file)
            Issue.record("the scan bomb inside the DICOM file was decoded")
        } catch {
            #expect(error.kind == .tooComplex && error.message.contains("too many progressive scans"), "\(error.message)")
        }
    }

    @Test func jpeg2000IsA415NamingTheTransferSyntax() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.folder + "MR_small_jp2klossless.dcm")))
        do {
            _ = try DicomRenderer.decode(bytes)
            Issue.record("JPEG 2000 was decoded")
        } catch {
            #expect(error.kind == .unsupportedVariant)
            #expect(error.message.contains("JPEG 2000") && error.message.contains("1.2.840.10008.1.2.4.90"))
        }
    }
}
