// Turns the JSON files bench/run.sh collected into bench/RESULTS.md's Markdown.
import Foundation

enum Report {
    static func load(_ dir: URL, _ name: String) -> [String: Any] {
        guard let data = try? Data(contentsOf: dir.appendingPathComponent(name)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    static func number(_ object: [String: Any], _ path: String...) -> Double? {
        var current: Any? = object
        for key in path { current = (current as? [String: Any])?[key] }
        return (current as? NSNumber)?.doubleValue
    }

    static func f(_ v: Double?, _ digits: Int = 1) -> String {
        guard let v, v.isFinite else { return "n/a" }
        return String(format: "%.\(digits)f", v)
    }

    static func markdown(dir: URL, threads: [Int]) -> String {
        var lines: [String] = []
        lines.append("| threads | decode | preprocess | forward | Grad-CAM | encode | whole analysis | bare forward, libtorch (Swift shim) | bare forward, Python | analysis / Python forward | shim forward / Python forward | peak RSS | first result incl. load |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t in threads {
            let p = load(dir, "pipeline-t\(t).json"), py = load(dir, "python-t\(t).json")
            let analysis = number(p, "analysisMedianMs"), pyForward = number(py, "median_ms")
            let shimForward = number(p, "stageMedianMs", "forward")
            let ratio = { (a: Double?, b: Double?) -> String in
                guard let a, let b, b > 0 else { return "n/a" }
                return String(format: "%.3fx", a / b)
            }
            var row = "| \(t) |"
            for stage in ["decode", "preprocess", "forward", "gradCAM", "encode"] {
                row += " \(f(number(p, "stageMedianMs", stage))) ms |"
            }
            row += " \(f(analysis)) ms | \(f(number(p, "bareForwardLibtorchMedianMs"))) ms | \(f(pyForward)) ms |"
            row += " \(ratio(analysis, pyForward)) | \(ratio(shimForward, pyForward)) |"
            row += " \(f(number(p, "peakRSSMB"), 0)) MB | \(f(number(p, "firstResultIncludingLoadMs"), 0)) ms |"
            lines.append(row)
        }
        let trap = load(dir, "python-variants-t1.json")
        if let variants = trap["variants"] as? [String: Any] {
            lines.append("")
            lines.append("One-thread trap (Python, 1 thread, bare forward median): "
                + variants.keys.sorted().map { "\($0) \(f(number(variants, $0, "median_ms"))) ms" }.joined(separator: "; ")
                + "; freeze+optimize_for_inference(features) \(f(number(trap, "median_ms"))) ms.")
        }
        return lines.joined(separator: "\n")
    }
}
