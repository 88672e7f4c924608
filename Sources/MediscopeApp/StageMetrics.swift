import Foundation
import MediscopeImaging
import MediscopeInference
import MediscopeServer

/// What the stage and queueing histograms record, and how /api/metrics names them.
enum StageMetrics {
    /// Stage durations of each stored analysis: `stage` is decode, encode or store for the analysis as
    /// a whole, and preprocess, forward or gradcam with a `model` label for each model's own part.
    static let stageSeconds = "mediscope_stage_seconds"
    /// From nginx handing a request to the pool (its `$msec`) to a worker starting to handle it.
    static let queueSeconds = "mediscope_queue_seconds"
    /// Stored analyses by their input check's verdict (`verdict` in_scope, out_of_scope, not_checked).
    static let inputChecks = "mediscope_input_checks_total"
    /// The reasons of out-of-scope analyses by `reason` code (an analysis may have several).
    static let inputCheckReasons = "mediscope_input_check_reasons_total"

    static let help = [
        stageSeconds: "Time per analysis stage: decode, encode, store for the analysis; preprocess, forward, gradcam per model.",
        queueSeconds: "Time from nginx handing a request to the pool to a worker starting on it.",
        inputChecks: "Stored analyses by input check verdict (out_of_scope: the image is not what the models were made for).",
        inputCheckReasons: "Reasons given for out-of-scope analyses, by code.",
    ]

    /// A Prometheus label value: backslash, quote and newline escaped.
    static func label(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

extension Services {
    /// Records one stored analysis's stage times (milliseconds in, seconds out).
    func observeStages(_ analysis: Analysis, storeMilliseconds: Double) {
        guard let histograms else { return }
        let t = analysis.timings
        for (stage, ms) in [("decode", t.decode), ("encode", t.encode), ("store", storeMilliseconds)] {
            histograms.observe(StageMetrics.stageSeconds, labels: "stage=\"\(stage)\"", seconds: ms / 1000)
        }
        for (model, own) in analysis.modelTimings.sorted(by: { $0.key < $1.key }) {
            let m = StageMetrics.label(model)
            for (stage, ms) in [("preprocess", own.preprocess), ("forward", own.forward), ("gradcam", own.gradCAM)] {
                histograms.observe(StageMetrics.stageSeconds, labels: "stage=\"\(stage)\",model=\"\(m)\"", seconds: ms / 1000)
            }
        }
    }

    /// Counts one stored analysis by its input check's verdict and, when out of scope, by each reason code.
    func observeInputCheck(_ check: InputCheck) {
        guard let histograms else { return }
        histograms.increment(StageMetrics.inputChecks, labels: "verdict=\"\(check.verdict.rawValue)\"")
        guard check.verdict == .outOfScope else { return }
        // One count per code and analysis, whichever models gave it.
        for code in Set(check.reasons.map(\.code)).sorted() {
            histograms.increment(StageMetrics.inputCheckReasons, labels: "reason=\"\(StageMetrics.label(code))\"")
        }
    }

    /// Records how long `request` waited between nginx and this worker, when nginx said when it sent it.
    func observeQueueing(_ request: HTTPRequest) {
        guard let histograms, let queuedAt = request.queuedAt else { return }
        histograms.observe(StageMetrics.queueSeconds, labels: "pool=\"\(StageMetrics.label(pool.config.name))\"",
                           seconds: Date().timeIntervalSince1970 - queuedAt)
    }
}
