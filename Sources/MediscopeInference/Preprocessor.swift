import MediscopeImaging

/// Builds a model's input tensor from an image, exactly as the manifest's input spec says.
package enum Preprocessor {
    /// `image` must already have the spec's colour mode; it is resized (Pillow bicubic) if needed.
    package static func tensor(from image: PixelImage, spec: InputSpec) -> [Float] {
        let sized = (image.width, image.height) == (spec.width, spec.height)
            ? image : image.resized(width: spec.width, height: spec.height)
        let c = sized.channels, plane = spec.width * spec.height
        // Per-channel affine map (v * scale - mean) / std, folded into one multiply-add.
        let gain = (0..<c).map { spec.scale / spec.std[$0] }
        let offset = (0..<c).map { -spec.mean[$0] / spec.std[$0] }
        var out = [Float](repeating: 0, count: plane * c)
        sized.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { dst in
                switch spec.layout {
                case .nhwc:
                    for i in 0..<plane {
                        for k in 0..<c { dst[i * c + k] = Float(px[i * c + k]) * gain[k] + offset[k] }
                    }
                case .nchw:
                    for k in 0..<c {
                        let g = gain[k], o = offset[k]
                        for i in 0..<plane { dst[k * plane + i] = Float(px[i * c + k]) * g + o }
                    }
                }
            }
        }
        return out
    }
}
