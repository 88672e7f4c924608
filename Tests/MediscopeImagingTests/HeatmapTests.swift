import Testing
import MediscopeImaging

@Suite("Grad-CAM helpers match OpenCV / pytorch_grad_cam")
struct HeatmapTests {
    @Test("JET equals cv2.applyColorMap(COLORMAP_JET), RGB order")
    func jetTable() {
        let reference = Fixtures.opencv.jetRGB
        #expect(reference.count == 768)
        var mismatches = 0
        for v in 0...255 {
            let c = Colormap.jet(UInt8(v))
            if [c.r, c.g, c.b] != Array(reference[v * 3..<v * 3 + 3]) { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(Colormap.jet(0) == (0, 0, 128) ? true : false)  // dark blue, not BGR
    }

    @Test("resizedBilinear equals cv2.resize(INTER_LINEAR) on float32",
          arguments: Fixtures.opencv.bilinear.map(\.dst))
    func bilinearParity(dst: String) {
        let c = Fixtures.opencv.bilinear.first { $0.dst == dst }!
        let map = FloatMap(width: c.srcWidth, height: c.srcHeight, values: Fixtures.floats(c.src))
        let out = map.resizedBilinear(width: c.dstWidth, height: c.dstHeight)
        let reference = Fixtures.floats(c.dst)
        #expect(out.values.count == reference.count)
        let maxError = zip(out.values, reference).map { abs($0 - $1) }.max() ?? .infinity
        print("bilinear \(c.srcWidth)x\(c.srcHeight) -> \(c.dstWidth)x\(c.dstHeight): max abs error \(maxError)")
        #expect(maxError <= 1e-5)
    }

    @Test("minMaxNormalized equals scale_cam_image", arguments: Fixtures.opencv.overlay.map(\.raw))
    func normalizeParity(raw: String) {
        let c = Fixtures.opencv.overlay.first { $0.raw == raw }!
        let map = FloatMap(width: c.camWidth, height: c.camHeight, values: Fixtures.floats(raw)).minMaxNormalized()
        let maxError = zip(map.values, Fixtures.floats(c.normalized)).map { abs($0 - $1) }.max()!
        #expect(maxError <= 1e-6)
        // In float32 the maximum becomes exactly 1 (x / (x + 1e-7) rounds), as in numpy.
        #expect(map.values.min()! == 0 && map.values.max()! <= 1 && map.values.max()! > 0.999)
    }

    @Test("camOnImage equals show_cam_on_image(use_rgb=True)", arguments: Fixtures.opencv.overlay.map(\.overlay))
    func overlayParity(file: String) {
        let c = Fixtures.opencv.overlay.first { $0.overlay == file }!
        let image = PixelImage(width: c.imageWidth, height: c.imageHeight, channels: 3, pixels: Fixtures.bytes(c.image))
        let cam = FloatMap(width: c.camWidth, height: c.camHeight, values: Fixtures.floats(c.raw)).minMaxNormalized()
        let out = Overlay.camOnImage(image, cam: cam, imageWeight: c.imageWeight)
        #expect(out.width == image.width && out.height == image.height && out.channels == 3)
        let diff = Difference(out.pixels, Fixtures.bytes(file))
        print("overlay \(file): \(diff)")
        #expect(diff.maxDiff <= 1, "\(diff)")
        // Off-by-one is tolerated only from float evaluation order, so it must be rare;
        // a rounding-mode bug (round vs numpy's truncation) would shift about half the values.
        #expect(diff.differing * 100 <= diff.total, "\(diff)")
    }

    @Test("overlay converts gray input to RGB")
    func overlayGray() {
        let gray = PixelImage(width: 4, height: 2, channels: 1, pixels: [UInt8](repeating: 100, count: 8))
        let cam = FloatMap(width: 2, height: 1, values: [0, 1])
        let out = Overlay.camOnImage(gray, cam: cam)
        #expect(out.channels == 3 && out.width == 4 && out.height == 2)
        // Left end is cold (blue dominates), right end hot (red dominates).
        #expect(out.pixels[2] > out.pixels[0] && out.pixels[9] > out.pixels[11])
    }
}

import Foundation

@Suite("FloatMap Codable")
struct FloatMapCodableTests {
    @Test func roundTripAndValidation() throws {
        let map = FloatMap(width: 2, height: 1, values: [0.25, 1])
        let data = try JSONEncoder().encode(map)
        #expect(try JSONDecoder().decode(FloatMap.self, from: data) == map)
        let bad = Data(#"{"width": 3, "height": 3, "values": [1, 2]}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FloatMap.self, from: bad) }
    }
}
