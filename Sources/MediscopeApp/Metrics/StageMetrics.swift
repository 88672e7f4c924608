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
