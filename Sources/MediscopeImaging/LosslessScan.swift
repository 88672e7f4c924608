/// The display-size scan kept without loss (a PNG), so that an overlay drawn from it later has the very
/// pixels of one drawn during the analysis. Written on the upload's path, so it is made fast: gray when
/// every pixel has R = G = B (a scan usually is: a third of the work), zlib level 1 with run-length matches.
package enum LosslessScan {
    /// `display` as a PNG that `decode` turns back into the same RGB pixels.
    package static func encode(_ display: PixelImage) throws(ImagingError) -> [UInt8] {
        if display.channels == 1 { return try ImageEncoder.png(display, fast: true) }
        let rgb = display.converted(toChannels: 3)
        if let gray = grayPlane(rgb) { return try ImageEncoder.png(gray, fast: true) }
        return try ImageEncoder.png(rgb, fast: true)
    }

    /// The RGB pixels `encode` was given.
    package static func decode(_ png: [UInt8]) throws(ImagingError) -> PixelImage {
        try ImageDecoder.decode(png).converted(toChannels: 3)
    }

    /// One channel of `rgb` when all three are equal everywhere (replicating it gives `rgb` back), else nil.
    package static func grayPlane(_ rgb: PixelImage) -> PixelImage? {
        let count = rgb.width * rgb.height
        var gray = [UInt8](repeating: 0, count: count)
        let equal = rgb.pixels.withUnsafeBufferPointer { px in
            gray.withUnsafeMutableBufferPointer { out in
                for i in 0..<count {
                    let r = px[i * 3]
                    guard r == px[i * 3 + 1], r == px[i * 3 + 2] else { return false }
                    out[i] = r
                }
                return true
            }
        }
        return equal ? PixelImage(width: rgb.width, height: rgb.height, channels: 1, pixels: gray) : nil
    }
}
