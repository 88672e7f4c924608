import Foundation
import ImageTestKit
import Testing
@testable import MediscopeImaging

/// The hostile DICOM classes of the bug hunt (issue 19), generated here, against the shim and the
/// renderer: refused with a reason a person can act on, or rendered exactly as their control is.
@Suite struct HostileDicomTests {
    func refusal(_ bytes: [UInt8], frame: Int? = nil) -> ImagingError? {
        do { _ = try DicomRenderer.decode(bytes, frame: frame); return nil } catch { return error }
    }

    // MARK: class 1: a frame that codes fewer pixels than Rows x Columns

    @Test(arguments: [(16, 16), (512, 64), (64, 512)])
    func aJPEGFrameSmallerThanTheImageIsRefused(width: Int, height: Int) throws {
        let error = try #require(refusal(try HostileDicom.shortJPEGFrame(codedWidth: width, codedHeight: height)))
        #expect(error.kind == .corrupt)
        #expect(error.message.contains("\(width)x\(height)") && error.message.contains("512x512"), "\(error.message)")
    }

    /// No byte of a frame depends on what the process decoded before: a frame whose codestream is cut
    /// short (its header matches, its data ends early) renders the same after two different scans.
    @Test func aTruncatedFrameNeverShowsTheScanDecodedBefore() throws {
        let whole = try HostileDicom.jpeg(width: 256, height: 256, seed: 3)
        let cut = HostileDicom.encapsulatedFile(HostileDicom.greyModule(width: 256, height: 256),
                                                fragments: [Array(whole.prefix(whole.count / 3))], syntax: "1.2.840.10008.1.2.4.50")
        func afterDecoding(_ seed: Int) throws -> [UInt8]? {
            let earlier = try DicomRenderer.decode(try HostileDicom.jpegFile(width: 256, height: 256, seed: seed)).0
            #expect(earlier.pixels.count == 256 * 256)
            return try? DicomRenderer.decode(cut).0.pixels
        }
        let a = try afterDecoding(1), b = try afterDecoding(2)
        #expect(a == b, "the cut frame's pixels changed with the scan decoded before it")
        if let a {
            let earlier = try DicomRenderer.decode(try HostileDicom.jpegFile(width: 256, height: 256, seed: 2)).0.pixels
            let tail = (256 * 200)..<(256 * 256)
            #expect(a[tail] != earlier[tail], "the cut frame's missing rows hold the earlier scan")
        }
    }

    // MARK: class 2: RLE

    @Test func aValidRLEFrameDecodesToItsPixels() throws {
        let image = HostileDicom.pattern(width: 64, height: 64)
        let file = HostileDicom.rleFile(width: 64, height: 64, fragment: HostileDicom.rleFrame(image.pixels))
        let stored = try DicomFile.read(file)
        #expect(stored.frameValues == image.pixels.map(Int32.init))
    }

    @Test func hostileRLEHeadersAndFragmentsAreRefusedFromTheirStructure() throws {
        for (name, file) in HostileDicom.hostileRLE() {
            let error = refusal(file)
            #expect(error?.kind == .corrupt, "\(name): \(error?.message ?? "decoded")")
            #expect(error?.message.contains("RLE") == true, "\(name): \(error?.message ?? "")")
        }
    }

    // MARK: class 3: the decode-cost budget wherever the scans are

    @Test func aScanBombBehindAnIconIsRefused() throws {
        let error = try #require(refusal(try HostileDicom.iconBeforePixelData(bombInIcon: false)))
        #expect(error.kind == .tooComplex && error.message.contains("too many progressive scans"), "\(error.message)")
    }

    @Test func anIconIsNeverDecodedInPlaceOfThePixelData() throws {
        let (image, _) = try DicomRenderer.decode(try HostileDicom.iconBeforePixelData(bombInIcon: true))
        #expect(image.width == 64 && image.height == 64)
    }

    @Test func aScanBombSplitAcrossFragmentsIsRefused() throws {
        let error = try #require(refusal(try HostileDicom.scanBombInFragments()))
        #expect(error.kind == .tooComplex && error.message.contains("too many progressive scans"), "\(error.message)")
    }

    // MARK: class 4: frame arithmetic

    @Test(arguments: [8192, nil] as [Int?])
    func framesPastThePixelDataAreRefused(frame: Int?) throws {
        let error = try #require(refusal(HostileDicom.framesPastTheData(), frame: frame))
        #expect(error.kind == .corrupt && error.message.contains("Pixel Data holds"), "\(error.message)")
    }

    @Test func encapsulatedFramesPastTheFragmentsAreRefused() throws {
        var elements = HostileDicom.greyModule(width: 64, height: 64, frames: 16385)
        elements.removeAll { $0.group == 0x0008 && $0.element == 0x0060 }
        let file = HostileDicom.encapsulatedFile(elements, fragments: [try HostileDicom.jpeg(width: 64, height: 64)],
                                                 syntax: "1.2.840.10008.1.2.4.50")
        let error = try #require(refusal(file, frame: 8192))
        #expect(error.kind == .corrupt && error.message.contains("Number of Frames"), "\(error.message)")
    }

    // MARK: class 5: rendering

    static let image = HostileDicom.pattern(width: 48, height: 40, seed: 5)

    func render(_ bytes: [UInt8]) throws -> (PixelImage, DicomRendering) { try DicomRenderer.decode(bytes) }

    @Test(arguments: ["0", "NaN", "Infinity", "-inf"])
    func aRescaleSlopeOfZeroOrNotANumberIsNoRescale(slope: String) throws {
        let control = try render(HostileDicom.monochrome16(Self.image))
        let hostile = try render(HostileDicom.monochrome16(Self.image, extra: [
            .text(0x0028, 0x1052, "DS", "0"), .text(0x0028, 0x1053, "DS", slope)]))
        #expect(hostile.0 == control.0)
        #expect(hostile.1.modalityLUT == "none" && hostile.1.rescaleSlope == nil)
        // Encodable: nothing that JSON cannot hold.
        _ = try JSONEncoder().encode(hostile.1)
    }

    @Test(arguments: [("NaN", "400"), ("100", "NaN"), ("Infinity", "Infinity"), ("1e999", "400")])
    func aWindowThatIsNotANumberIsNoWindow(center: String, width: String) throws {
        let control = try render(HostileDicom.monochrome16(Self.image))
        let hostile = try render(HostileDicom.monochrome16(Self.image, extra: [
            .text(0x0028, 0x1050, "DS", center), .text(0x0028, 0x1051, "DS", width)]))
        #expect(hostile.0 == control.0 && hostile.1.voi == "frameRange")
        _ = try JSONEncoder().encode(hostile.1)
    }

    /// Padding (the last four rows, stored 60000 or 60000...60090) is no part of the frame's range: the file
    /// renders as its control, whose padded rows hold the image's lowest value; without the attribute it
    /// does not.
    @Test(arguments: [false, true])
    func pixelPaddingIsLeftOutOfTheFramesRange(range: Bool) throws {
        let w = Self.image.width, padded = (w * (Self.image.height - 4))...
        let lowest = UInt16(Self.image.pixels.prefix(padded.lowerBound).min()!) * 16 + 100
        let control = try render(HostileDicom.monochrome16(Self.image) { i, p in padded.contains(i) ? lowest : UInt16(p) * 16 + 100 })
        let hostileValue: (Int, UInt8) -> UInt16 = { i, p in padded.contains(i) ? 60000 + UInt16(range ? i % 91 : 0) : UInt16(p) * 16 + 100 }
        var attributes: [DicomBuilder.Element] = [.us(0x0028, 0x0120, 60000)]
        if range { attributes.append(.us(0x0028, 0x0121, 60090)) }
        let hostile = try render(HostileDicom.monochrome16(Self.image, extra: attributes, stored: hostileValue))
        let unmarked = try render(HostileDicom.monochrome16(Self.image, stored: hostileValue))
        #expect(hostile.0 == control.0)
        #expect(hostile.1.windowCenter == control.1.windowCenter && hostile.1.windowWidth == control.1.windowWidth)
        #expect(unmarked.0 != control.0, "without Pixel Padding Value the padding widens the range")
    }

    /// Enhanced MR: the window of the frame's Per-frame Functional Groups, else the Shared ones.
    @Test func theFunctionalGroupsWindowIsApplied() throws {
        let shared = (1200.0, 1600.0), perFrame = (900.0, 700.0)
        let withWindow = { (c: Double, w: Double) in
            try self.render(HostileDicom.monochrome16(Self.image, extra: [
                .text(0x0028, 0x1050, "DS", DicomBuilder.ds(c)), .text(0x0028, 0x1051, "DS", DicomBuilder.ds(w))]))
        }
        let middle = try render(HostileDicom.enhancedMR(Self.image, shared: shared, perFrame: perFrame))
        #expect(middle.0 == (try withWindow(perFrame.0, perFrame.1)).0)
        #expect(middle.1.voi == "window" && middle.1.windowCenter == perFrame.0 && middle.1.windowWidth == perFrame.1)
        let first = try DicomRenderer.decode(HostileDicom.enhancedMR(Self.image, shared: shared, perFrame: perFrame), frame: 0)
        #expect(first.0 == (try withWindow(shared.0, shared.1)).0 && first.1.windowCenter == shared.0)
    }

    // MARK: class 7: layouts valid readers read

    /// Native YBR_FULL_422 with an odd width: pairs run on across rows (as pydicom reads them); with
    /// Cb = Cr = 128 every pixel is grey at its Y.
    @Test func ybrFull422WithAnOddWidthIsRead() throws {
        let width = 7, height = 4, ys = (0..<(width * height)).map { UInt8(20 + $0 * 7) }
        var stored: [UInt8] = []
        for pair in stride(from: 0, to: ys.count, by: 2) { stored += [ys[pair], ys[pair + 1], 128, 128] }
        let file = DicomBuilder.file([
            .text(0x0008, 0x0060, "CS", "OT"), .us(0x0028, 0x0002, 3), .text(0x0028, 0x0004, "CS", "YBR_FULL_422"),
            .us(0x0028, 0x0006, 0), .us(0x0028, 0x0010, UInt16(height)), .us(0x0028, 0x0011, UInt16(width)),
            .us(0x0028, 0x0100, 8), .us(0x0028, 0x0101, 8), .us(0x0028, 0x0102, 7), .us(0x0028, 0x0103, 0),
            DicomBuilder.Element(0x7FE0, 0x0010, "OB", stored),
        ])
        let (image, _) = try DicomRenderer.decode(file)
        #expect(image.width == width && image.channels == 3)
        #expect(image.pixels == ys.flatMap { [$0, $0, $0] })
    }

    /// The meta information says explicit VR little endian, the data set is implicit VR: read as implicit.
    @Test func anImplicitDataSetBehindAnExplicitMetaIsRead() throws {
        let proper = HostileDicom.monochrome16(Self.image)
        // Re-encode the data set (after the meta group) as implicit VR: tag, 4-byte length, value.
        let metaEnd = 132 + 12 + (Int(proper[140]) | Int(proper[141]) << 8)
        var implicit = Array(proper[..<metaEnd]), i = metaEnd
        while i < proper.count {
            let vr = String(decoding: proper[(i + 4)..<(i + 6)], as: UTF8.self)
            let long = ["OB", "OW", "SQ", "UN", "UT"].contains(vr)
            let length = long ? Int(proper[i + 8]) | Int(proper[i + 9]) << 8 | Int(proper[i + 10]) << 16 | Int(proper[i + 11]) << 24
                               : Int(proper[i + 6]) | Int(proper[i + 7]) << 8
            let header = long ? 12 : 8
            implicit += Array(proper[i..<(i + 4)]) + [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
            implicit += proper[(i + header)..<(i + header + length)]
            i += header + length
        }
        let file = try DicomFile.read(implicit)
        #expect(file.transferSyntaxUID == "1.2.840.10008.1.2")
        #expect(try DicomRenderer.decode(implicit).0 == (try DicomRenderer.decode(proper)).0)
    }
}
