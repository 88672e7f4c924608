import CImageCodecs

/// An 8-bit image: interleaved channels, row-major, no row padding.
/// `channels` is 1 (gray), 3 (RGB) or 4 (RGBA).
package struct PixelImage: Sendable, Equatable {
    package let width: Int
    package let height: Int
    package let channels: Int
    package var pixels: [UInt8]

    package init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "negative image size \(width)x\(height)")
        precondition(channels == 1 || channels == 3 || channels == 4, "channels must be 1, 3 or 4, got \(channels)")
        precondition(pixels.count == width * height * channels,
                     "pixel buffer has \(pixels.count) bytes, expected \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Same results as Pillow's `convert("L")` / `convert("RGB")` / `convert("RGBA")`:
    /// L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (Pillow's ITU-R 601-2 integer formula),
    /// alpha is dropped without compositing, gray is replicated, new alpha is opaque.
    package func converted(toChannels target: Int) -> PixelImage {
        precondition(target == 1 || target == 3 || target == 4, "channels must be 1, 3 or 4, got \(target)")
        if target == channels { return self }
        let count = width * height
        let src = channels
        let out = [UInt8](unsafeUninitializedCapacity: count * target) { dst, initialized in
            pixels.withUnsafeBufferPointer { s in
                switch (src, target) {
                case (1, _):
                    for i in 0..<count {
                        let v = s[i]
                        dst[i * target] = v
                        dst[i * target + 1] = v
                        dst[i * target + 2] = v
                        if target == 4 { dst[i * 4 + 3] = 255 }
                    }
                case (_, 1):
                    for i in 0..<count {
                        let r = UInt32(s[i * src]), g = UInt32(s[i * src + 1]), b = UInt32(s[i * src + 2])
                        dst[i] = UInt8(truncatingIfNeeded: (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
                    }
                default:  // 3 <-> 4
                    for i in 0..<count {
                        dst[i * target] = s[i * src]
                        dst[i * target + 1] = s[i * src + 1]
                        dst[i * target + 2] = s[i * src + 2]
                        if target == 4 { dst[i * 4 + 3] = 255 }
                    }
                }
            }
            initialized = count * target
        }
        return PixelImage(width: width, height: height, channels: target, pixels: out)
    }

    /// Pillow's `Image.resize((width, height))` default (BICUBIC, reducing_gap=None), bit-exact:
    /// the C port in CImageCodecs follows Resample.c's 8-bit fixed-point path. RGBA is
    /// resized premultiplied, as Pillow does.
    package func resized(width newWidth: Int, height newHeight: Int) -> PixelImage {
        precondition(newWidth > 0 && newHeight > 0, "target size must be positive, got \(newWidth)x\(newHeight)")
        precondition(width > 0 && height > 0, "cannot resize an empty image")
        precondition(pixels.count == width * height * channels, "pixel buffer does not match the image size")
        let total = newWidth * newHeight * channels
        let out = [UInt8](unsafeUninitializedCapacity: total) { dst, initialized in
            let rc = pixels.withUnsafeBufferPointer { src in
                codec_resize_bicubic(src.baseAddress, Int32(width), Int32(height), Int32(channels),
                                     dst.baseAddress, Int32(newWidth), Int32(newHeight))
            }
            // Only fails on malloc failure of the small coefficient tables / one temp image.
            precondition(Int(rc) == CODEC_OK, "resize failed (out of memory)")
            initialized = total
        }
        return PixelImage(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }
}
