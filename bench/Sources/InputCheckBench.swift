// `mediscope-bench input-check --manifest M --image F [--image F ...] [--threads N] [--runs N]`: what the
// input check (issue 22) adds to an analysis, measured side by side in one process: the manifest as it is
// and the same manifest with `scope` and `inputCheck` taken out, analyses interleaved (checked, unchecked,
// checked, ...) so drift and other load fall on both. Prints a Markdown table (bench/input-check.sh).
import Foundation
import MediscopeImaging
import MediscopeInference

enum InputCheckBench {
    struct Row {
        var image: String
        var checked: [Double] = []
        var unchecked: [Double] = []
        var checkStage: [Double] = []
        var verdict = ""
    }

    static func markdown(arguments: [String]) throws -> String {
        var manifestPath = "models/manifest.json", images: [String] = [], threads = 1, runs = 30, warmup = 3
        var args = arguments.makeIterator()
        while let a = args.next() {
            switch a {
            case "--manifest": manifestPath = args.next() ?? manifestPath
            case "--image": images.append(args.next() ?? "")
            case "--threads": threads = Int(args.next() ?? "") ?? threads
            case "--runs": runs = Int(args.next() ?? "") ?? runs
            case "--warmup": warmup = Int(args.next() ?? "") ?? warmup
            default: throw ModelError(.runtime, "usage: mediscope-bench input-check --manifest M --image F... [--threads N] [--runs N]")
            }
        }
        TorchThreads.set(threads)
        let manifest = try ModelManifest.load(from: URL(fileURLWithPath: manifestPath))
        var bare = manifest
        for i in bare.models.indices { bare.models[i].scope = nil; bare.models[i].inputCheck = nil }
        let checked = AnalysisPipeline(manifest: manifest), unchecked = AnalysisPipeline(manifest: bare)

        var rows: [Row] = []
        for path in images {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            for _ in 0..<warmup { _ = try checked.analyze(imageBytes: bytes); _ = try unchecked.analyze(imageBytes: bytes) }
            var row = Row(image: URL(fileURLWithPath: path).lastPathComponent)
            for i in 0..<runs {
                // Alternate which goes first, so neither always follows the other.
                for first in (i % 2 == 0 ? [true, false] : [false, true]) {
                    let t0 = ContinuousClock.now
                    let a = try (first ? checked : unchecked).analyze(imageBytes: bytes)
                    let ms = milliseconds(since: t0)
                    if first {
                        row.checked.append(ms)
                        row.checkStage.append(a.timings.inputCheck)
                        row.verdict = a.inputCheck.verdict.rawValue
                    } else {
                        row.unchecked.append(ms)
                    }
                }
            }
            rows.append(row)
        }
        var lines = [
            "| image | verdict | analysis without the check | with the check | difference of medians | the check's own stage (statistics + distance) | own stage / analysis |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows {
            let with = median(r.checked), without = median(r.unchecked), own = median(r.checkStage)
            lines.append("| \(r.image) | \(r.verdict) | \(f(without)) ms | \(f(with)) ms | \(f(with - without)) ms (\(pct((with - without) / without))) "
                         + "| \(String(format: "%.3f", own)) ms | \(pct(own / without)) |")
        }
        lines.append("")
        lines.append("\(manifest.models.map(\.id).joined(separator: ", ")); \(threads) thread(s); \(runs) interleaved pairs per image after "
                     + "\(warmup) warm-up pairs; analyses render the scan and overlays as the server does.")
        return lines.joined(separator: "\n")
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    static func pct(_ v: Double) -> String { String(format: "%+.2f%%", v * 100).replacingOccurrences(of: "+", with: v < 0 ? "" : "+") }
}
