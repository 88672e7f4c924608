/// How a Grad-CAM overlay is drawn and encoded. The overlays drawn during an analysis (the command line)
/// and those drawn when a heatmap is first looked at (the server) both go through `render`, so the same
/// scan, map and style always give the same bytes.
package struct OverlayStyle: Sendable, Equatable {
    /// WebP, PNG or JPEG; never DICOM (read only: asking for it gives WebP).
    package let format: ImageFormat
    /// Encoder quality for WebP and JPEG (0...100); PNG ignores it.
    package let quality: Float
    /// The scan's weight in the blend (show_cam_on_image's `image_weight`).
    package let imageWeight: Float

    package init(format: ImageFormat, quality: Float, imageWeight: Float = 0.5) {
        self.format = format == .dicom ? .webp : format
        self.quality = quality
        self.imageWeight = imageWeight
    }

    /// `cam` over `display` (the display-size scan, any channels), encoded as `format`.
    package func render(_ display: PixelImage, cam: FloatMap) throws(ImagingError) -> [UInt8] {
        let overlay = Overlay.camOnImage(display, cam: cam, imageWeight: imageWeight)
        switch format {
        case .webp, .dicom: return try ImageEncoder.webp(overlay, quality: quality)
        case .png: return try ImageEncoder.png(overlay)
        case .jpeg: return try ImageEncoder.jpeg(overlay, quality: Int(quality))
        }
    }
}
