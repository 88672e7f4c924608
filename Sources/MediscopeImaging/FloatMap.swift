/// A single-channel float map (e.g. a Grad-CAM activation map), row-major.
package struct FloatMap: Sendable, Equatable {
    package let width: Int
    package let height: Int
    package var values: [Float]

    package init(width: Int, height: Int, values: [Float]) {
        precondition(width >= 0 && height >= 0 && values.count == width * height,
                     "FloatMap \(width)x\(height) needs \(width * height) values, got \(values.count)")
        self.width = width
        self.height = height
        self.values = values
    }

    /// cv2.resize(map, (width, height), interpolation=INTER_LINEAR) on float32:
    /// src = (dst + 0.5) * scale - 0.5, weights in float, edges clamped; horizontal then vertical.
    package func resizedBilinear(width newWidth: Int, height newHeight: Int) -> FloatMap {
        precondition(newWidth > 0 && newHeight > 0 && width > 0 && height > 0, "sizes must be positive")
        let (xofs, xw) = Self.linearTaps(source: width, destination: newWidth)
        let (yofs, yw) = Self.linearTaps(source: height, destination: newHeight)
        // Horizontal pass over every source row (maps are small: a few hundred pixels wide).
        var horizontal = [Float](repeating: 0, count: newWidth * height)
        values.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * width
                    for x in 0..<newWidth {
                        let s = xofs[x], f = xw[x]
                        let s1 = Swift.min(s + 1, width - 1)
                        dst[y * newWidth + x] = src[row + s] * (1 - f) + src[row + s1] * f
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: newWidth * newHeight)
        horizontal.withUnsafeBufferPointer { h in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<newHeight {
                    let r0 = yofs[y] * newWidth
                    let r1 = Swift.min(yofs[y] + 1, height - 1) * newWidth
                    let b1 = yw[y], b0 = 1 - b1
                    for x in 0..<newWidth {
                        dst[y * newWidth + x] = h[r0 + x] * b0 + h[r1 + x] * b1
                    }
                }
            }
        }
        return FloatMap(width: newWidth, height: newHeight, values: out)
    }

    /// OpenCV's resizeGeneric tap computation for INTER_LINEAR (scale = 1 / (dst/src)).
    private static func linearTaps(source: Int, destination: Int) -> ([Int], [Float]) {
        let scale = 1.0 / (Double(destination) / Double(source))
        var offsets = [Int](repeating: 0, count: destination)
        var weights = [Float](repeating: 0, count: destination)
        for d in 0..<destination {
            var f = Float((Double(d) + 0.5) * scale - 0.5)
            var s = Int(f.rounded(.down))
            f -= Float(s)
            if s < 0 { f = 0; s = 0 }
            if s >= source - 1 { f = 0; s = source - 1 }
            offsets[d] = s
            weights[d] = f
        }
        return (offsets, weights)
    }

    /// pytorch_grad_cam scale_cam_image: v -= min; v /= (1e-7 + max(v)).
    package func minMaxNormalized() -> FloatMap {
        guard let lo = values.min() else { return self }
        let shifted = values.map { $0 - lo }
        // numpy<2 adds the Python float 1e-7 to the float32 max in double precision.
        let denominator = Float(1e-7 + Double(shifted.max()!))
        return FloatMap(width: width, height: height, values: shifted.map { $0 / denominator })
    }
}

/// Codable as {"width", "height", "values"}; decoding checks the value count so a malformed
/// document cannot produce a map whose indexing would trap later.
extension FloatMap: Codable {
    private enum CodingKeys: String, CodingKey { case width, height, values }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let width = try c.decode(Int.self, forKey: .width)
        let height = try c.decode(Int.self, forKey: .height)
        let values = try c.decode([Float].self, forKey: .values)
        guard width >= 0, height >= 0, values.count == width * height else {
            throw DecodingError.dataCorruptedError(forKey: .values, in: c,
                debugDescription: "FloatMap \(width)x\(height) needs \(width * height) values, got \(values.count)")
        }
        self.init(width: width, height: height, values: values)
    }
}
