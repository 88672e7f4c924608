import MediscopeEncoding
import MediscopeImaging

/// What a Grad-CAM heatmap is drawn from when it is first looked at (issue 23): the display-size scan
/// kept without loss, the map at the layer's resolution and the style. Stored in the heatmap's
/// `ImageRef` in place of its bytes; the ref's key is the SHA-256 of `digestInput`, so one drawing has
/// one key wherever it is kept and whoever draws it (drawing is deterministic: the same bytes each time).
package struct HeatmapDrawing: Codable, Sendable, Equatable {
    /// What `draw` does, as a number that is part of the key: a change to the drawing is a new version.
    package static let currentVersion = 1

    package var version: Int
    /// Key of the display-size scan as a PNG (`LosslessScan`), an image of the record.
    package var scan: String
    /// Grad-CAM at the layer's resolution, min-max normalised to [0, 1].
    package var gradCAM: FloatMap
    /// Encoder quality (WebP, JPEG).
    package var quality: Float
    /// The scan's weight in the blend.
    package var imageWeight: Float

    package init(scan: String, gradCAM: FloatMap, style: OverlayStyle) {
        version = Self.currentVersion
        self.scan = scan; self.gradCAM = gradCAM; quality = style.quality; imageWeight = style.imageWeight
    }

    /// The lossless scan's image (its size unknown here: `byteCount` nil).
    package func scanImage(width: Int, height: Int) -> ImageRef {
        ImageRef(key: scan, contentType: ImageFormat.png.contentType, width: width, height: height, byteCount: nil)
    }

    /// The style of a heatmap drawn as `format`.
    package func style(_ format: ImageFormat) -> OverlayStyle {
        OverlayStyle(format: format, quality: quality, imageWeight: imageWeight)
    }

    /// Every input of the drawing in a fixed binary form (little-endian, floats by their bits).
    package func digestInput(format: ImageFormat) -> [UInt8] {
        var bytes = Array("mediscope-heatmap\u{0}".utf8)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        append(Int64(version))
        bytes += Array(scan.utf8) + [0] + Array(format.rawValue.utf8) + [0]
        append(quality.bitPattern)
        append(imageWeight.bitPattern)
        append(Int64(gradCAM.width))
        append(Int64(gradCAM.height))
        for value in gradCAM.values { append(value.bitPattern) }
        return bytes
    }

    /// The key of this drawing as `format`.
    package func key(format: ImageFormat) -> String { SHA256Hex.digest(digestInput(format: format)) }

    /// Draws the heatmap as `format` on `png`, the lossless scan's bytes.
    /// - Throws: `StoreError(.io)` when the scan cannot be read, this version does not draw
    ///   `version`, or the drawing fails.
    package func draw(on png: [UInt8], format: ImageFormat) throws(StoreError) -> [UInt8] {
        guard version == Self.currentVersion else {
            throw StoreError(.io, "heatmap drawing version \(version) is not one this version draws (\(Self.currentVersion))")
        }
        do {
            return try style(format).render(try LosslessScan.decode(png), cam: gradCAM)
        } catch {
            throw StoreError(.io, "the heatmap cannot be drawn: \(error.message)")
        }
    }
}

extension ImageRef {
    /// The heatmap drawn from `drawing` as `format` (width x height, the scan's display size).
    package static func drawn(_ drawing: HeatmapDrawing, format: ImageFormat, width: Int, height: Int) -> ImageRef {
        ImageRef(key: drawing.key(format: format), contentType: format.contentType, width: width, height: height,
                 byteCount: nil, drawing: drawing)
    }
}
