import Foundation
import ImageTestKit
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// A DICOM made from a committed JPEG scan's pixels gives exactly the JPEG's analysis: 16-bit stored
/// values 128 p + 64, Rescale Slope 0.5 and Intercept -1000 (modality value 64 p - 968), and the LINEAR
/// window centre 7192.5 / width 16321, which maps 64 p - 968 back to p (PS3.3 C.11.2.1.2).
@Suite struct DicomAnalysisTests {
    static let jpeg = [UInt8](try! Data(contentsOf: Repository.root.appendingPathComponent("Tests/MediscopeImagingTests/Fixtures/gray.jpg")))

    static func dicom(monochrome1: Bool) throws -> [UInt8] {
        let image = try ImageDecoder.decode(jpeg)
        precondition(image.channels == 1)
        let stored = image.pixels.map { UInt16(128 * Int(monochrome1 ? 255 - $0 : $0) + 64) }
        return DicomBuilder.monochrome16(width: image.width, height: image.height, stored: stored,
                                         photometric: monochrome1 ? "MONOCHROME1" : "MONOCHROME2",
                                         slope: 0.5, intercept: -1000, center: 7192.5, windowWidth: 16321)
    }

    @Test(arguments: [false, true])
    func windowedDicomGivesTheJPEGsAnalysis(monochrome1: Bool) throws {
        let pipeline = try tinyPipeline(render: true)
        let fromJPEG = try pipeline.analyze(imageBytes: Self.jpeg)
        let fromDICOM = try pipeline.analyze(imageBytes: try Self.dicom(monochrome1: monochrome1))
        #expect(try ImageDecoder.decode(try Self.dicom(monochrome1: monochrome1)) == ImageDecoder.decode(Self.jpeg))
        #expect(fromDICOM.format == .dicom)
        #expect(fromDICOM.imageWidth == fromJPEG.imageWidth && fromDICOM.imageHeight == fromJPEG.imageHeight)
        #expect(fromDICOM.results.map(\.probabilities) == fromJPEG.results.map(\.probabilities))
        #expect(fromDICOM.results.map(\.prediction) == fromJPEG.results.map(\.prediction))
        #expect(fromDICOM.results.map(\.gradCAM.values) == fromJPEG.results.map(\.gradCAM.values))
        #expect(fromDICOM.scan?.bytes == fromJPEG.scan?.bytes, "the stored scan is made from the windowed image")
        let rendering = try #require(fromDICOM.dicom)
        #expect(rendering.voi == "window" && rendering.windowCenter == 7192.5 && rendering.windowWidth == 16321)
        #expect(rendering.modalityLUT == "rescale" && rendering.rescaleSlope == 0.5 && rendering.rescaleIntercept == -1000)
        #expect(rendering.photometricInterpretation == (monochrome1 ? "MONOCHROME1" : "MONOCHROME2"))
        #expect(fromDICOM.dicomAttributes?.patientID == "DCM-0001" && fromDICOM.dicomAttributes?.modality == "MR")
    }

    @Test func aFrameTheFileDoesNotHaveIsAnError() throws {
        let pipeline = try tinyPipeline()
        do {
            _ = try pipeline.analyze(imageBytes: try Self.dicom(monochrome1: false), frame: 3)
            Issue.record("frame 4 of 1 was analysed")
        } catch {
            guard let analysisError = error as? AnalysisError, case .badImage(let e) = analysisError else { Issue.record("\(error)"); return }
            #expect(e.kind == .noSuchFrame && e.message.contains("the file has 1"))
        }
    }
}
