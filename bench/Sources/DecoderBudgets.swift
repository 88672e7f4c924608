// `mediscope-bench decoder-budgets`: what the decoder bounds cost and what they save (issue 9).
// Prints the "Decoder budgets" section of bench/RESULTS.md as Markdown.
import Foundation
import ImageTestKit
import MediscopeImaging

enum DecoderBudgets {
    static func time(_ runs: Int, _ body: () -> Void) -> Double {
        median((0..<runs).map { _ in
            let start = ContinuousClock.now
            body()
            return ms(since: start)
        })
    }

    static func markdown() throws -> String {
        let bomb = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 10_000)
        let refused = time(20) { _ = try? ImageDecoder.decode(bomb) }
        // Without the bounds: the same kind of file with fewer scans, decoded to the end, per scan.
        var unbounded = ImageLimits()
        unbounded.maxJPEGScans = 1_000_000
        unbounded.maxJPEGScanPixels = .max
        let sample = 60
        let partial = try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: sample)
        let partialMs = time(3) { _ = try? ImageDecoder.decode(partial, limits: unbounded) }
        let perScan = partialMs / Double(sample)

        let scan = try ImageEncoder.jpeg(ImageBuilders.pattern(width: 512, height: 512), quality: 90, progressive: true)
        let normal = time(20) { _ = try? ImageDecoder.decode(scan) }

        let zeros = try ImageBuilders.zlibZeros(side: 2048)
        let plain = try ImageEncoder.png(ImageBuilders.pattern(width: 512, height: 512))
        let textBomb = ImageBuilders.png(plain, inserting: (0..<200).map {
            ImageBuilders.chunk("zTXt", Array("Comment\($0)".utf8) + [0, 0] + zeros)
        })
        let pngPlain = time(20) { _ = try? ImageDecoder.decode(plain) }
        let pngBomb = time(20) { _ = try? ImageDecoder.decode(textBomb) }

        func f(_ x: Double) -> String { String(format: "%.1f ms", x) }
        return """
        <!-- begin decoders -->
        ## Decoder budgets (issue 9)

        Written by `bench/decoders.sh` (`make bench-decoders`): medians of one run of `mediscope-bench decoder-budgets`.

        | input | bytes | time |
        |---|---|---|
        | progressive gray JPEG claiming 7071x7071 with 10,000 scans: refused from its structure (422) | \(bomb.count) | \(f(refused)) |
        | the same kind with \(sample) scans, decoded with the bounds lifted (median of 3) | \(partial.count) | \(f(partialMs)) = \(f(perScan)) per scan |
        | so 10,000 scans without the bounds would take about | | \(String(format: "%.0f s", perScan * 10_000 / 1000)) |
        | a normal 512x512 progressive JPEG (6 scans), decoded | \(scan.count) | \(f(normal)) |
        | 512x512 PNG | \(plain.count) | \(f(pngPlain)) |
        | the same PNG with 200 zTXt chunks that would each inflate to 4 MiB (skipped) | \(textBomb.count) | \(f(pngBomb)) |

        <!-- end decoders -->
        """
    }
}
