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
                        "SC_rgb_rle_2frame.dcm", "nested_priv_SQ.dcm", "MR_small_jp2klossless.dcm", "GDCMJ2K_TextGBR.dcm",
                        "JPEG2000.dcm"]

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

    // MARK: JPEG 2000 (OpenJPEG behind the shim)

    /// A real JPEG 2000 file's bytes and where its codestream (SOC) starts and how long its fragment is.
    static func j2k(_ name: String) throws -> (file: [UInt8], soc: Int, length: Int) {
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.folder + name)))
        let marker: [UInt8] = [0xFF, 0x4F, 0xFF, 0x51]
        let found = (8..<(file.count - 4)).first { (i: Int) -> Bool in Array(file[i..<(i + 4)]) == marker }
        let soc = try #require(found)
        // The fragment's item header sits right before it: (FFFE,E000) and a 32-bit length.
        #expect(Array(file[(soc - 8)..<(soc - 4)]) == [0xFE, 0xFF, 0x00, 0xE0])
        let length = Int(file[soc - 4]) | Int(file[soc - 3]) << 8 | Int(file[soc - 2]) << 16 | Int(file[soc - 1]) << 24
        return (file, soc, length)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// The SIZ marker's fields, as offsets from SOC (ISO/IEC 15444-1 A.5.1).
    enum SIZ { static let xsiz = 8, ysiz = 12, xosiz = 16, xtsiz = 24, ytsiz = 28, csiz = 40, ssiz = 42 }

    static func patched(_ file: [UInt8], at offset: Int, _ bytes: [UInt8]) -> [UInt8] {
        var b = file
        b.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        return b
    }

    static func refusal(_ bytes: [UInt8]) -> ImagingError? {
        do { _ = try DicomRenderer.decode(bytes); return nil } catch { return error }
    }

    /// MR_small_jp2klossless.dcm is MR_small.dcm coded as lossless JPEG 2000: the same stored values.
    @Test func aLosslessJPEG2000FrameDecodesToTheUncompressedValues() throws {
        let j2k = try DicomFile.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.folder + "MR_small_jp2klossless.dcm"))))
        let native = try DicomFile.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.folder + "MR_small.dcm"))))
        #expect(j2k.transferSyntaxUID == "1.2.840.10008.1.2.4.90")
        #expect(j2k.frameValues.count == 64 * 64)
        #expect(j2k.frameValues == native.frameValues)
        let (image, _) = try DicomRenderer.decode(try Self.j2k("JPEG2000.dcm").file)
        #expect(image.width == 256 && image.height == 1024 && image.channels == 1)
    }

    @Test func aJPEG2000FrameWhoseSIZDisagreesWithTheDataSetIsRefused() throws {
        let (file, soc, _) = try Self.j2k("MR_small_jp2klossless.dcm")
        // Columns: SIZ says 65 wide (Xsiz - XOsiz), the data set 64.
        let wider = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.xsiz, Self.be32(65))))
        #expect(wider.kind == .corrupt && wider.message.contains("65x64 with 1 sample") && wider.message.contains("64x64"), "\(wider.message)")
        // Rows.
        let shorter = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.ysiz, Self.be32(32))))
        #expect(shorter.kind == .corrupt && shorter.message.contains("64x32 with 1 sample"), "\(shorter.message)")
        // Components: three in Csiz, the data set has one sample (and SIZ's length no longer fits).
        let colour = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.csiz, [0, 3])))
        #expect(colour.kind == .corrupt && colour.message.contains("3 components"), "\(colour.message)")
        // Subsampled component.
        let subsampled = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.ssiz + 1, [2])))
        #expect(subsampled.kind == .corrupt && subsampled.message.contains("subsampled"), "\(subsampled.message)")
        // Precision over Bits Allocated: 17-bit samples in a 16-bit frame.
        let deep = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.ssiz, [0x90])))
        #expect(deep.kind == .corrupt && deep.message.contains("17-bit samples"), "\(deep.message)")
    }

    /// A data set that says three samples (RGB) over a one-component codestream.
    @Test func aJPEG2000FrameWithFewerComponentsThanSamplesIsRefused() throws {
        let (file, soc, length) = try Self.j2k("MR_small_jp2klossless.dcm")
        var elements = HostileDicom.greyModule(width: 64, height: 64, bits: 8, photometric: "RGB").filter { !($0.group == 0x0028 && $0.element == 0x0002) }
        elements.append(.us(0x0028, 0x0002, 3))
        elements.append(.us(0x0028, 0x0006, 0))
        let rgb = HostileDicom.encapsulatedFile(elements,
                                                fragments: [Array(file[soc..<(soc + length)])], syntax: "1.2.840.10008.1.2.4.90")
        let error = try #require(Self.refusal(rgb))
        #expect(error.kind == .corrupt && error.message.contains("64x64 with 1 sample") && error.message.contains("3 samples"), "\(error.message)")
    }

    @Test func aJPEG2000FrameCutShortIsRefused() throws {
        let (file, soc, length) = try Self.j2k("MR_small_jp2klossless.dcm")
        let codestream = Array(file[soc..<(soc + length)])
        let module = HostileDicom.greyModule(width: 64, height: 64, bits: 16)
        // The control: the same codestream in a file built here decodes.
        let whole = HostileDicom.encapsulatedFile(module, fragments: [codestream], syntax: "1.2.840.10008.1.2.4.90")
        #expect(try DicomFile.read(whole).frameValues.count == 64 * 64)
        // Cut mid-codestream: its tile-part says it is longer than the bytes left.
        let cut = HostileDicom.encapsulatedFile(module, fragments: [Array(codestream.prefix(length / 2))], syntax: "1.2.840.10008.1.2.4.90")
        let error = try #require(Self.refusal(cut))
        #expect(error.kind == .corrupt && error.message.contains("truncated"), "\(error.message)")
        // Cut, with the tile-part's length zeroed ("to the end of the codestream"): OpenJPEG, strict, refuses it.
        var open = codestream
        let sot = try #require((0..<(open.count - 1)).first { open[$0] == 0xFF && open[$0 + 1] == 0x90 })
        open.replaceSubrange((sot + 6)..<(sot + 10), with: [0, 0, 0, 0])
        let unbounded = HostileDicom.encapsulatedFile(module, fragments: [Array(open.prefix(length / 2))], syntax: "1.2.840.10008.1.2.4.90")
        let decoded = try #require(Self.refusal(unbounded))
        #expect(decoded.kind == .corrupt && decoded.message.contains("OpenJPEG says"), "\(decoded.message)")
    }

    @Test func absurdJPEG2000TilingAndDecompositionAreRefusedBeforeDecoding() throws {
        let (file, soc, _) = try Self.j2k("JPEG2000.dcm")
        // 1x1 tiles over 256x1024 pixels: 262,144 tiles.
        let tiny = Self.patched(Self.patched(file, at: soc + SIZ.xtsiz, Self.be32(1)), at: soc + SIZ.ytsiz, Self.be32(1))
        let tiles = try #require(Self.refusal(tiny))
        #expect(tiles.kind == .tooComplex && tiles.message.contains("262144 tiles") && tiles.message.contains("4096"), "\(tiles.message)")
        // Tiles of 0 pixels.
        let empty = try #require(Self.refusal(Self.patched(file, at: soc + SIZ.xtsiz, Self.be32(0))))
        #expect(empty.kind == .corrupt && empty.message.contains("tile grid"), "\(empty.message)")
        // 33 decomposition levels in COD.
        let (small, at, _) = try Self.j2k("MR_small_jp2klossless.dcm")
        let cod = try #require((at..<(small.count - 1)).first { small[$0] == 0xFF && small[$0 + 1] == 0x52 })
        let levels = try #require(Self.refusal(Self.patched(small, at: cod + 9, [33])))
        #expect(levels.kind == .tooComplex && levels.message.contains("33 decomposition levels"), "\(levels.message)")
    }

    /// High-Throughput JPEG 2000 and JPEG 2000 Part 2 are not decoded: a 415 naming the transfer syntax.
    @Test(arguments: ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.4.92"])
    func otherJPEG2000SyntaxesAreA415NamingThem(_ uid: String) throws {
        let (file, soc, length) = try Self.j2k("MR_small_jp2klossless.dcm")
        let bytes = HostileDicom.encapsulatedFile(HostileDicom.greyModule(width: 64, height: 64, bits: 16),
                                                  fragments: [Array(file[soc..<(soc + length)])], syntax: uid)
        let error = try #require(Self.refusal(bytes))
        #expect(error.kind == .unsupportedVariant)
        #expect(error.message.contains(uid) && error.message.contains("JPEG 2000"), "\(error.message)")
        if uid.hasPrefix("1.2.840.10008.1.2.4.20") { #expect(error.message.contains("High-Throughput")) }
    }
}
