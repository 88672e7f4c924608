import Foundation
import Testing
import TestSupport
@testable import MediscopeImaging

/// Real DICOM files from packages (Debian's python3-pydicom, PyPI's pydicom-data) against pydicom's
/// rendering of the same frame (Tests/Reference/dicom_reference.py, made by `make reference`).
enum DicomReference {
    static let folder = Repository.root.appendingPathComponent("Tests/Artifacts/reference/dicom")

    struct Entry: Decodable {
        var name: String
        var path: String
        var status: String
        var rows: Int?
        var columns: Int?
        var channels: Int?
        var frame: Int?
        var voi: String?
        var raw: String?
    }

    static var entries: [Entry] {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("index.json")) else { return [] }
        return (try? JSONDecoder().decode([Entry].self, from: data)) ?? []
    }

    /// Files we refuse on purpose, with the error kind they get (documented in docs/dicom.md).
    static let refused: [String: ImagingError.Kind] = {
        var kinds: [String: ImagingError.Kind] = [:]
        // PALETTE COLOR: 415 (not rendered yet).
        for name in ["pydicom-data/OBXXXX1A.dcm", "pydicom-data/OBXXXX1A_2frame.dcm", "pydicom-data/OBXXXX1A_expb.dcm",
                     "pydicom-data/OBXXXX1A_expb_2frame.dcm", "pydicom-data/OBXXXX1A_rle.dcm",
                     "pydicom-data/OBXXXX1A_rle_2frame.dcm", "pydicom-data/gdcm-US-ALOKA-16.dcm",
                     "pydicom-data/gdcm-US-ALOKA-16_big.dcm"] { kinds[name] = .unsupportedVariant }
        // Bits Allocated 1 (segmentation masks): 415.
        for name in ["debian/liver_1frame.dcm", "debian/liver_expb_1frame.dcm", "pydicom-data/liver.dcm",
                     "pydicom-data/liver_expb.dcm"] { kinds[name] = .unsupportedVariant }
        // Its meta information says explicit VR, its data set is implicit VR (pydicom guesses): 422.
        for name in ["debian/SC_rgb_jpeg.dcm"] { kinds[name] = .corrupt }
        // Bits Allocated 32 (RT dose, 32-bit RGB): 415.
        for name in ["debian/rtdose.dcm", "debian/rtdose_1frame.dcm", "debian/rtdose_expb.dcm", "debian/rtdose_expb_1frame.dcm",
                     "debian/rtdose_rle.dcm", "debian/rtdose_rle_1frame.dcm", "debian/SC_rgb_rle_32bit.dcm",
                     "debian/SC_rgb_rle_32bit_2frame.dcm", "pydicom-data/SC_rgb_32bit.dcm",
                     "pydicom-data/SC_rgb_32bit_2frame.dcm", "pydicom-data/SC_rgb_expb_32bit.dcm",
                     "pydicom-data/SC_rgb_expb_32bit_2frame.dcm"] { kinds[name] = .unsupportedVariant }
        return kinds
    }()

    /// JPEG frames DCMTK (IJG 6b: islow IDCT, its own chroma upsampling) and pylibjpeg (libjpeg 9) decode
    /// differently by a few levels; the bound for them.
    static let jpegDecoderTolerance: [String: Int] = [
        "debian/SC_rgb_dcmtk_+eb+cy+n1.dcm": 2, "debian/SC_rgb_dcmtk_+eb+cy+np.dcm": 2,
        "pydicom-data/color3d_jpeg_baseline.dcm": 6,
    ]

    static func bytes(_ entry: Entry) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: entry.path))) }
}

@Suite struct DicomReferenceTests {
    @Test func referencesExist() {
        #expect(DicomReference.entries.count > 100, "run `make reference` (Tests/Reference/dicom_reference.py) first")
    }

    /// Every file pydicom renders is rendered within one level of it, or refused as documented.
    @Test(arguments: DicomReference.entries.filter { $0.status == "decoded" }.map(\.name))
    func rendersLikePydicom(_ name: String) throws {
        let entry = try #require(DicomReference.entries.first { $0.name == name })
        let bytes = try DicomReference.bytes(entry)
        if let kind = DicomReference.refused[name] {
            do {
                _ = try DicomRenderer.decode(bytes)
                Issue.record("\(name) was rendered, expected \(kind)")
            } catch { #expect(error.kind == kind, "\(error.message)") }
            return
        }
        let (image, rendering) = try DicomRenderer.decode(bytes)
        #expect(image.width == entry.columns && image.height == entry.rows && image.channels == entry.channels)
        #expect(rendering.frame == (entry.frame ?? 0) + 1)
        #expect(rendering.voi == (entry.voi ?? "none"))
        let expected = [UInt8](try Data(contentsOf: DicomReference.folder.appendingPathComponent(try #require(entry.raw))))
        try #require(expected.count == image.pixels.count)
        var worst = 0, over = 0
        for (a, b) in zip(expected, image.pixels) {
            let d = abs(Int(a) - Int(b))
            worst = max(worst, d)
            if d > 1 { over += 1 }
        }
        #expect(worst <= DicomReference.jpegDecoderTolerance[name, default: 1], "\(name): \(over) of \(expected.count) samples differ by more than 1 (worst \(worst))")
    }

    /// Files without an image, or that pydicom cannot read either: a clear error or a rendering, never a crash.
    @Test(arguments: DicomReference.entries.filter { $0.status != "decoded" }.map(\.name))
    func filesWithoutAnImageGetAnError(_ name: String) throws {
        let entry = try #require(DicomReference.entries.first { $0.name == name })
        let bytes = try DicomReference.bytes(entry)
        do {
            let (image, _) = try DicomRenderer.decode(bytes)
            #expect(entry.status == "pydicom-error", "\(name): pydicom found no pixel data, we rendered \(image.width)x\(image.height)")
        } catch {
            #expect(!error.message.isEmpty)
            if entry.status == "no-pixel-data" {
                #expect([.corrupt, .unsupportedVariant].contains(error.kind), "\(name): \(error.kind) \(error.message)")
            }
        }
    }
}
