package enum Overlay {
    /// pytorch_grad_cam.utils.image.show_cam_on_image(img / 255, mask, use_rgb=True,
    /// colormap=JET, image_weight=w), with float32 arithmetic in the same order:
    /// heatmap = JET(uint8(255 * mask)) / 255; cam = (1 - w) * heatmap + w * img / 255;
    /// cam /= max(cam); result = uint8(255 * cam) (truncation, like numpy's cast).
    /// The map is resized bilinearly (OpenCV style) when its size differs from the image.
    package static func camOnImage(_ image: PixelImage, cam: FloatMap, imageWeight: Float = 0.5) -> PixelImage {
        let rgb = image.converted(toChannels: 3)
        let mask = (cam.width == rgb.width && cam.height == rgb.height)
            ? cam : cam.resizedBilinear(width: rgb.width, height: rgb.height)
        let w = Swift.min(Swift.max(imageWeight, 0), 1)
        let count = rgb.width * rgb.height
        var blended = [Float](repeating: 0, count: count * 3)
        var peak: Float = 0
        rgb.pixels.withUnsafeBufferPointer { px in
            mask.values.withUnsafeBufferPointer { m in
                blended.withUnsafeMutableBufferPointer { out in
                    for i in 0..<count {
                        // np.uint8(255 * mask): truncation; clamp guards maps outside 0...1.
                        let scaled = Swift.min(Swift.max(255 * m[i], 0), 255)
                        let heat = Colormap.jet(UInt8(scaled))
                        let hs: (Float, Float, Float) = (Float(heat.r) / 255, Float(heat.g) / 255, Float(heat.b) / 255)
                        let c0 = (1 - w) * hs.0 + w * (Float(px[i * 3]) / 255)
                        let c1 = (1 - w) * hs.1 + w * (Float(px[i * 3 + 1]) / 255)
                        let c2 = (1 - w) * hs.2 + w * (Float(px[i * 3 + 2]) / 255)
                        out[i * 3] = c0
                        out[i * 3 + 1] = c1
                        out[i * 3 + 2] = c2
                        peak = Swift.max(peak, Swift.max(c0, Swift.max(c1, c2)))
                    }
                }
            }
        }
        let pixels = blended.map { v -> UInt8 in
            let s = peak > 0 ? 255 * (v / peak) : 0
            return UInt8(Swift.min(Swift.max(s, 0), 255))
        }
        return PixelImage(width: rgb.width, height: rgb.height, channels: 3, pixels: pixels)
    }
}
