import MediscopeImaging
import MediscopeStore

/// An analysis as the server stores it since issue 23: the scan (JPEG), its lossless copy (PNG) and two
/// heatmaps drawn when first looked at, with the overlays an analysis would have drawn at once.
package struct DrawnAnalysis {
    package var new: NewAnalysis
    /// By result id: the overlay `OverlayStyle.render` makes of the display scan and the result's map.
    package var eager: [String: [UInt8]]
    package var lossless: ImageBlob

    package init(org: String = "org-a", seed: Int = 1) throws {
        let (w, h) = (48, 32)
        var pixels = [UInt8](repeating: 0, count: w * h)
        for i in pixels.indices { pixels[i] = UInt8((i * 7 + seed * 13) % 251) }
        let display = PixelImage(width: w, height: h, channels: 1, pixels: pixels).converted(toChannels: 3)
        lossless = ImageBlob.make(bytes: try LosslessScan.encode(display), format: .png, width: w, height: h)
        let style = OverlayStyle(format: .webp, quality: 80)
        var new = makeAnalysis(org: org)
        new.images = [new.images[0], lossless]
        eager = [:]
        for index in new.results.indices {
            let cam = FloatMap(width: 5, height: 4, values: (0..<20).map { Float(($0 * (index + 3) + seed) % 11) / 10 })
            let drawing = HeatmapDrawing(scan: lossless.ref.key, gradCAM: cam, style: style)
            new.results[index].heatmap = .drawn(drawing, format: .webp, width: w, height: h)
            eager[new.results[index].id] = try style.render(display, cam: cam)
        }
        self.new = new
    }
}
