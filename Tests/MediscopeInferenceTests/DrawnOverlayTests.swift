import Foundation
import MediscopeImaging
import Testing
import TestSupport
@testable import MediscopeInference

/// Overlays drawn when first looked at (issue 23) are the overlays an analysis draws at once: the same
/// bytes, from the lossless scan and the map the analysis keeps, for colour, gray and DICOM scans.
@Suite struct DrawnOverlayTests {
    /// Every overlay drawn from what `.later` keeps equals, byte for byte, the one `.now` drew.
    static func expectSameOverlays(_ pipeline: AnalysisPipeline, _ image: [UInt8]) throws {
        let now = try pipeline.analyze(imageBytes: image, overlays: .now)
        let later = try pipeline.analyze(imageBytes: image, overlays: .later)
        #expect(later.overlays.isEmpty, "nothing drawn during the analysis")
        #expect(later.scan?.bytes == now.scan?.bytes)
        let lossless = try #require(later.losslessScan)
        let style = try #require(later.overlayStyle)
        #expect(style.format == .webp && lossless.format == .png)
        let display = try LosslessScan.decode(lossless.bytes)
        let scan = try #require(now.scan)
        #expect(display.width == scan.width && display.height == scan.height)
        #expect(later.results.map(\.id) == now.results.map(\.id))
        for result in later.results {
            let eager = try #require(now.overlays[result.id])
            let drawn = try style.render(display, cam: result.gradCAM)
            #expect(drawn == eager.bytes, "result \(result.id): drawn later = drawn during the analysis")
            #expect(try ImageDecoder.decode(drawn) == ImageDecoder.decode(eager.bytes))
        }
    }

    @Test func colourScanOverlaysAreTheSame() throws {
        try Self.expectSameOverlays(tinyPipeline(render: true),
                                    ImageEncoder.jpeg(syntheticScan(width: 800, height: 600), quality: 90))
    }

    @Test func grayScanOverlaysAreTheSameAndItsLosslessScanIsGray() throws {
        let gray = try ImageEncoder.png(syntheticScan(width: 300, height: 200, channels: 1))
        try Self.expectSameOverlays(tinyPipeline(render: true), gray)
        let later = try tinyPipeline(render: true).analyze(imageBytes: gray, overlays: .later)
        #expect(try ImageDecoder.decode(try #require(later.losslessScan).bytes).channels == 1, "a third of the pixels to compress")
    }

    /// Most exported MRI slices are RGB JPEGs whose pixels are gray: their scan and lossless scan are
    /// kept as one channel, and overlays still match.
    @Test func rgbFileWithGrayPixelsKeepsAGrayScan() throws {
        let rgbGray = try ImageEncoder.png(syntheticScan(width: 300, height: 200, channels: 1).converted(toChannels: 3))
        #expect(try ImageDecoder.decode(rgbGray).channels == 3)
        try Self.expectSameOverlays(tinyPipeline(render: true), rgbGray)
        let later = try tinyPipeline(render: true).analyze(imageBytes: rgbGray, overlays: .later)
        #expect(try ImageDecoder.decode(try #require(later.scan).bytes).channels == 1)
        #expect(try ImageDecoder.decode(try #require(later.losslessScan).bytes).channels == 1)
    }

    @Test func dicomScanOverlaysAreTheSameWebP() throws {
        try Self.expectSameOverlays(tinyPipeline(render: true), DicomAnalysisTests.dicom(monochrome1: true))
    }

    /// The served model (int8 when present, else fp32) on a committed brain MRI slice.
    @Test func defaultModelOverlaysAreTheSame() throws {
        var manifestURL = Repository.root.appendingPathComponent("models/manifest-int8.json")
        if !FileManager.default.fileExists(atPath: Repository.root.appendingPathComponent("models/brain_tumor_vgg16_int8.pt").path) {
            manifestURL = Repository.defaultManifest
        }
        let pipeline = AnalysisPipeline(manifest: try ModelManifest.load(from: manifestURL))
        let scan = [UInt8](try Data(contentsOf: Repository.reference.appendingPathComponent("scans/scan_baseline.jpg")))
        try Self.expectSameOverlays(pipeline, scan)
    }

    @Test func losslessScanGivesBackItsPixels() throws {
        for channels in [1, 3] {
            let image = syntheticScan(width: 37, height: 23, channels: channels)
            #expect(try LosslessScan.decode(LosslessScan.encode(image)) == image.converted(toChannels: 3))
        }
    }
}
