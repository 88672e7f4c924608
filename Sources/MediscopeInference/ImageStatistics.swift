import Foundation
import MediscopeImaging

/// Cheap statistics of a decoded image, taken on every k-th pixel (k = ceil(longest side / 256)), with
/// Pillow's luma (models/fit_input_check.py computes the same to measure the checks). Spread, entropy
/// and detail are of the foreground: the bounding box of samples brighter than the background level
/// (an exported slice often sits in a wide black margin, which would otherwise read as "no information").
package struct ImageStatistics: Sendable, Equatable {
    package var width: Int
    package var height: Int
    /// Standard deviation of the foreground's luma, 0...255.
    package var greySpread: Double
    /// Shannon entropy of the 256-bin luma histogram, in bits (0...8).
    package var entropyBits: Double
    /// Mean absolute luma difference between neighbouring sampled pixels (a smooth gradient: about 1).
    package var detail: Double
    /// Fraction of sampled pixels whose max(r, g, b) - min(r, g, b) exceeds 40.
    package var colourFraction: Double

    static let grid = 256
    static let colourChroma = 40
    /// Luma at or below this is background (the black around a slice).
    static let backgroundLuma: Int32 = 16
    /// A foreground box of fewer samples than this (a dot) is no foreground: the whole frame is measured.
    static let minForegroundSamples = 64

    package init(_ image: PixelImage) {
        width = image.width
        height = image.height
        let k = max(1, (max(image.width, image.height) + Self.grid - 1) / Self.grid)
        let rows = (image.height + k - 1) / k, cols = (image.width + k - 1) / k
        var luma = [Int32](repeating: 0, count: rows * cols)
        var coloured = 0
        let c = image.channels
        image.pixels.withUnsafeBufferPointer { px in
            for r in 0..<rows {
                for q in 0..<cols {
                    let i = ((r * k) * image.width + q * k) * c
                    let v: Int32
                    if c >= 3 {
                        let red = Int32(px[i]), green = Int32(px[i + 1]), blue = Int32(px[i + 2])
                        v = (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16
                        if max(red, green, blue) - min(red, green, blue) > Int32(Self.colourChroma) { coloured += 1 }
                    } else {
                        v = Int32(px[i])
                    }
                    luma[r * cols + q] = v
                }
            }
        }
        colourFraction = Double(coloured) / Double(rows * cols)

        // The foreground box: rows and columns with a sample above the background level.
        var top = rows, bottom = -1, left = cols, right = -1
        for r in 0..<rows {
            for q in 0..<cols where luma[r * cols + q] > Self.backgroundLuma {
                top = min(top, r); bottom = max(bottom, r); left = min(left, q); right = max(right, q)
            }
        }
        if bottom < 0 || (bottom - top + 1) * (right - left + 1) < Self.minForegroundSamples {
            (top, bottom, left, right) = (0, rows - 1, 0, cols - 1)
        }
        var histogram = [Int](repeating: 0, count: 256)
        var sum = 0.0, squares = 0.0
        var differences = 0, pairs = 0
        for r in top...bottom {
            for q in left...right {
                let v = luma[r * cols + q]
                histogram[Int(v)] += 1
                let d = Double(v); sum += d; squares += d * d
                if q < right { differences += Int(abs(luma[r * cols + q + 1] - v)); pairs += 1 }
                if r < bottom { differences += Int(abs(luma[(r + 1) * cols + q] - v)); pairs += 1 }
            }
        }
        let n = Double((bottom - top + 1) * (right - left + 1))
        let mean = sum / n
        greySpread = max(0, squares / n - mean * mean).squareRoot()
        entropyBits = histogram.reduce(0.0) { e, count in
            guard count > 0 else { return e }
            let p = Double(count) / n
            return e - p * log2(p)
        }
        detail = pairs > 0 ? Double(differences) / Double(pairs) : 0
    }
}
