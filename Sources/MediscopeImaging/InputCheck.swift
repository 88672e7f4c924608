import Foundation

/// Whether an image is one the models were made for (issue 22): one per analysis, at its top level.
///
/// Two layers. Image checks before inference, cheap and explainable (too small, near-uniform, low
/// information, colour where greyscale is expected, a declared modality or body part that is not the
/// model's), from the manifest entry's `scope`. A feature-space check after the forward pass: the
/// Mahalanobis distance of the mean-pooled `features(x)` activations (the tensor Grad-CAM already
/// uses) from in-distribution slices, with parameters fitted by models/fit_input_check.py.
/// The verdict never changes the probabilities; it says whether to trust them.
///
/// JSON (every key always present; `score`, `threshold`, `method` null when no check ran):
/// `{"verdict": "in_scope" | "out_of_scope" | "not_checked", "reasons": [{"code", "message"}],
///   "score": 41.2, "threshold": 74.1, "method": "image-checks+mahalanobis-sqrt"}`
package struct InputCheck: Codable, Sendable, Equatable {
    package enum Verdict: String, Codable, Sendable {
        /// Every check ran and passed.
        case inScope = "in_scope"
        /// At least one check says the image is not what the model was made for: the reasons say which.
        case outOfScope = "out_of_scope"
        /// The model declares no input check (or only part of one) and nothing failed.
        case notChecked = "not_checked"
    }

    package struct Reason: Codable, Sendable, Equatable {
        /// Stable, for programs: see `InputCheck.Code`.
        package var code: String
        /// For people: what was measured and what the model expects.
        package var message: String
        package init(code: String, message: String) { self.code = code; self.message = message }
    }

    /// The reason codes.
    package enum Code {
        package static let tooSmall = "too_small"
        package static let uniform = "uniform"
        package static let lowInformation = "low_information"
        package static let colour = "colour"
        package static let modality = "modality"
        package static let bodyPart = "body_part"
        /// The feature-space check: the image looks unlike the slices the model was checked on.
        package static let unfamiliar = "unfamiliar"
        /// The model declares no input check at all.
        package static let notConfigured = "not_configured"
        /// The model declares a scope (image checks ran) but no fitted feature check.
        package static let noFeatureCheck = "no_feature_check"
        /// The analysis was stored before Mediscope checked images.
        package static let notRecorded = "not_recorded"
        /// Every code above.
        package static let all: Set<String> = [tooSmall, uniform, lowInformation, colour, modality, bodyPart, unfamiliar,
                                              notConfigured, noFeatureCheck, notRecorded]
    }

    /// The field of an analysis stored before input checks existed: nothing is claimed about it.
    package static let notRecorded = InputCheck(verdict: .notChecked, reasons: [
        Reason(code: Code.notRecorded, message: "This analysis was made before Mediscope checked whether images are in the models' scope.")])

    /// What the dashboard, the printed report and the report draft say first about an out-of-scope image.
    package static let warning = "This image does not look like a scan the model was made for: its numbers are not meaningful."

    /// True when the image is outside what the models were made for: their numbers are not meaningful.
    package var isOutOfScope: Bool { verdict == .outOfScope }

    package var verdict: Verdict
    package var reasons: [Reason]
    /// The feature-space distance (for several models: of the model closest to or furthest past its threshold).
    package var score: Double?
    /// The distance above which the image is out of scope, for the same model as `score`.
    package var threshold: Double?
    /// What ran: "image-checks+mahalanobis-sqrt", "image-checks", or null.
    package var method: String?

    package init(verdict: Verdict, reasons: [Reason] = [], score: Double? = nil, threshold: Double? = nil, method: String? = nil) {
        self.verdict = verdict
        self.reasons = reasons
        self.score = score
        self.threshold = threshold
        self.method = method
    }

    enum CodingKeys: String, CodingKey { case verdict, reasons, score, threshold, method }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(reasons, forKey: .reasons)
        try c.encode(score, forKey: .score)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(method, forKey: .method)
    }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        verdict = try c.decode(Verdict.self, forKey: .verdict)
        reasons = try c.decodeIfPresent([Reason].self, forKey: .reasons) ?? []
        score = try c.decodeIfPresent(Double.self, forKey: .score)
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
        method = try c.decodeIfPresent(String.self, forKey: .method)
    }

    /// One verdict for an analysis from each model's: out of scope if any model says so, not checked if
    /// any model could not say, in scope only if all say so. Reasons of all models (named when there are
    /// several); score and threshold of the model whose score is the largest share of its threshold.
    package static func combine(_ checks: [(model: String, check: InputCheck)]) -> InputCheck {
        guard checks.count > 1 else {
            return checks.first?.check ?? InputCheck(verdict: .notChecked, reasons: [
                Reason(code: Code.notConfigured, message: "No model checked this image.")])
        }
        let verdicts = checks.map(\.check.verdict)
        let verdict: Verdict = verdicts.contains(.outOfScope) ? .outOfScope : verdicts.contains(.notChecked) ? .notChecked : .inScope
        let reasons = checks.flatMap { model, check in
            check.reasons.map { Reason(code: $0.code, message: "\(model): \($0.message)") }
        }
        let scored = checks.compactMap { c -> (InputCheck, Double)? in
            guard let s = c.check.score, let t = c.check.threshold, t > 0 else { return nil }
            return (c.check, s / t)
        }
        let worst = scored.max { $0.1 < $1.1 }?.0
        let methods = Set(checks.compactMap(\.check.method))
        return InputCheck(verdict: verdict, reasons: reasons, score: worst?.score, threshold: worst?.threshold,
                          method: methods.count == 1 ? methods.first : methods.isEmpty ? nil : methods.sorted().joined(separator: ","))
    }
}

extension InputCheck {
    /// The check in words, for a report to another system (FHIR, a DICOM SR): "Input check: " and its
    /// verdict, then the reasons given.
    package var sentence: String {
        let verdict: String
        switch self.verdict {
        case .inScope: verdict = "in scope: the image is one the models were made for."
        case .outOfScope: verdict = "out of scope. " + InputCheck.warning
        case .notChecked: verdict = "not checked."
        }
        return (["Input check: " + verdict] + reasons.map(\.message)).joined(separator: " ")
    }
}
